package state

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// LastFromLeader reads the last message of subject in stream from the
// stream's leader, with its sequence; found is false when the subject has
// none. KV reads are direct gets, which any replica may answer, and a
// replica that is behind answers with the past: right after a write, or
// after a partition healed, it may not show that write at all. A holder
// that must know whether its own write landed asks the leader.
func LastFromLeader(ctx context.Context, js jetstream.JetStream, stream, subject string) (seq uint64, data []byte, found bool, err error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": subject})
	msg, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return 0, nil, false, err
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, nil, false, fmt.Errorf("stream %s: last message of %s: %w", stream, subject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil, false, nil
	case resp.Error != nil:
		return 0, nil, false, resp.Error
	case resp.Message == nil:
		return 0, nil, false, fmt.Errorf("stream %s: last message of %s: empty answer", stream, subject)
	}
	return resp.Message.Seq, resp.Message.Data, true, nil
}
