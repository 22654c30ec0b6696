//go:build !linux

package capture

import "errors"

func watch(string, chan<- struct{}) (func(), error) {
	return nil, errors.New("capture: no file notification on this platform")
}
