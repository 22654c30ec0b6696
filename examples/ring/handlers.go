package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ozanturksever/go-cluster"
)

// partitions must match cluster.Ring(256) in main.go.
const partitions = 256

// request is the body of both calls: {"key": "...", "value": "..."}.
type request struct {
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"`
}

// handleSet stores value under key in the key's partition. Calls routed
// with cluster.ForKey reach the partition's owner only, so the partition's
// map exists (OnOwn made it).
func handleSet(ctx context.Context, body []byte) ([]byte, error) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil || req.Key == "" {
		return nil, errors.New(`set wants {"key": "...", "value": "..."}`)
	}
	p := cluster.PartitionFor(req.Key, partitions)
	cache.Lock()
	defer cache.Unlock()
	part := cache.data[p]
	if part == nil {
		return nil, fmt.Errorf("partition %d is not on this node", p)
	}
	part[req.Key] = req.Value
	return []byte("ok"), nil
}

// handleGet returns the value stored under key, or an error if there is none.
func handleGet(ctx context.Context, body []byte) ([]byte, error) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil || req.Key == "" {
		return nil, errors.New(`get wants {"key": "..."}`)
	}
	p := cluster.PartitionFor(req.Key, partitions)
	cache.RLock()
	defer cache.RUnlock()
	v, ok := cache.data[p][req.Key]
	if !ok {
		return nil, fmt.Errorf("no value for %q", req.Key)
	}
	return v, nil
}
