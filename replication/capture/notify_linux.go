//go:build linux

package capture

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// watch delivers a wake-up on ch for every batch of changes to the file at
// path (a write, a truncation, a metadata change, its removal). It returns
// a stop function, or an error where inotify is not available (the caller
// then polls).
func watch(path string, ch chan<- struct{}) (stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	const mask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, path, mask); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking descriptor makes an os.File that uses the runtime
	// poller: Read parks the goroutine, and Close wakes it.
	f := os.NewFile(uintptr(fd), "inotify:"+path)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			if _, err := f.Read(buf); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return
				}
				// Any other error: fall back to the poll, still wake.
				select {
				case ch <- struct{}{}:
				default:
				}
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return func() {
		f.Close()
		<-done
	}, nil
}
