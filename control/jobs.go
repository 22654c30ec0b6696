package control

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/state"
)

var (
	// ErrJobNotFound: no job of that name was ever submitted (or it was purged).
	ErrJobNotFound = errors.New("job not found")
	// ErrCheckIndex: a submission's expected version did not match the
	// job's current one (someone else changed it).
	ErrCheckIndex = errors.New("job version changed since it was read")
	// ErrVersionNotFound: the job has no such version in its history.
	ErrVersionNotFound = errors.New("job version not found")
	// ErrReservedName: job names starting with "gcl-" are the agent's own.
	ErrReservedName = errors.New(`job names starting with "gcl-" are reserved`)
)

// ReservedPrefix starts the names of apps the agents run for themselves.
const ReservedPrefix = "gcl-"

// Job is one version of a submitted job.
type Job struct {
	Name    string       `json:"name"`
	Version uint64       `json:"version"` // 1 for the first submission, +1 for every change
	Spec    *jobspec.App `json:"spec"`
	// Stopped jobs keep their record (and history) but run nowhere.
	Stopped     bool      `json:"stopped,omitempty"`
	Source      string    `json:"source,omitempty"` // the job file's text, for inspect and history
	SubmittedAt time.Time `json:"submitted_at"`
	// Revision is the bucket revision of this version (not stored).
	Revision uint64 `json:"-"`
}

func decodeJob(e jetstream.KeyValueEntry) (Job, error) {
	var j Job
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return Job{}, fmt.Errorf("job %s revision %d: %w", e.Key(), e.Revision(), err)
	}
	j.Revision = e.Revision()
	return j, nil
}

// Job returns the current version of job name.
func (s *Store) Job(ctx context.Context, name string) (Job, error) {
	e, err := s.jobs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Job{}, fmt.Errorf("job %q: %w", name, ErrJobNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("read job %q: %w", name, err)
	}
	return decodeJob(e)
}

// Jobs returns the current version of every job, sorted by name.
func (s *Store) Jobs(ctx context.Context) ([]Job, error) {
	var out []Job
	err := s.listEntries(ctx, s.jobs, "", func(_ string, e jetstream.KeyValueEntry) error {
		j, err := decodeJob(e)
		if err == nil {
			out = append(out, j)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	slices.SortFunc(out, func(a, b Job) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// JobVersion returns version v of job name from its history.
func (s *Store) JobVersion(ctx context.Context, name string, v uint64) (Job, error) {
	cur, err := s.Job(ctx, name)
	if err != nil {
		return Job{}, err
	}
	if cur.Version == v {
		return cur, nil
	}
	hist, err := s.JobHistory(ctx, name)
	if err != nil {
		return Job{}, err
	}
	for _, j := range hist {
		if j.Version == v {
			return j, nil
		}
	}
	return Job{}, fmt.Errorf("job %q version %d: %w", name, v, ErrVersionNotFound)
}

// JobHistory returns the kept versions of job name, oldest first.
func (s *Store) JobHistory(ctx context.Context, name string) ([]Job, error) {
	entries, err := s.jobs.History(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("job %q: %w", name, ErrJobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("job %q history: %w", name, err)
	}
	var out []Job
	for _, e := range entries {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		j, err := decodeJob(e)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// SameSpec reports whether two specs describe the same job: equal apart
// from where the job file declared them.
func SameSpec(a, b *jobspec.App) bool {
	return bytes.Equal(specJSON(a), specJSON(b))
}

func specJSON(a *jobspec.App) []byte {
	if a == nil {
		return nil
	}
	c := *a
	c.Source = jobspec.Location{}
	b, _ := json.Marshal(&c)
	return b
}

// SubmitOptions qualify a submission.
type SubmitOptions struct {
	// CheckVersion, when set, makes the submission fail with ErrCheckIndex
	// unless the job's current version is *CheckVersion (0: the job must
	// not exist).
	CheckVersion *uint64
	Source       string
}

// SubmitJob stores spec as the job's next version. A spec equal to the
// running version of a job that is not stopped changes nothing and
// returns that version with changed false.
func (s *Store) SubmitJob(ctx context.Context, spec *jobspec.App, opts SubmitOptions) (job Job, changed bool, err error) {
	if strings.HasPrefix(spec.Name, ReservedPrefix) {
		return Job{}, false, fmt.Errorf("job %q: %w", spec.Name, ErrReservedName)
	}
	for {
		cur, err := s.Job(ctx, spec.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrJobNotFound) {
			return Job{}, false, err
		}
		if opts.CheckVersion != nil && *opts.CheckVersion != cur.Version {
			return Job{}, false, fmt.Errorf("job %q is at version %d, not %d: %w", spec.Name, cur.Version, *opts.CheckVersion, ErrCheckIndex)
		}
		if exists && !cur.Stopped && SameSpec(cur.Spec, spec) {
			return cur, false, nil
		}
		next := Job{Name: spec.Name, Version: cur.Version + 1, Spec: spec, Source: opts.Source, SubmittedAt: time.Now().UTC()}
		rev, err := putCAS(ctx, s.jobs, spec.Name, next, cur.Revision)
		if state.IsCASFailure(err) {
			if opts.CheckVersion != nil {
				return Job{}, false, fmt.Errorf("job %q changed while submitting: %w", spec.Name, ErrCheckIndex)
			}
			continue
		}
		if err != nil {
			return Job{}, false, fmt.Errorf("submit job %q: %w", spec.Name, err)
		}
		next.Revision = rev
		return next, true, nil
	}
}

// StopJob marks job name stopped (a new version, so `revert` can undo
// it); purge removes the job and its history instead.
func (s *Store) StopJob(ctx context.Context, name string, purge bool) (Job, error) {
	for {
		cur, err := s.Job(ctx, name)
		if err != nil {
			return Job{}, err
		}
		if purge {
			if err := s.jobs.Purge(ctx, name, jetstream.LastRevision(cur.Revision)); state.IsCASFailure(err) {
				continue
			} else if err != nil {
				return Job{}, fmt.Errorf("purge job %q: %w", name, err)
			}
			// A job submitted again under this name starts at version 1;
			// its old progress must not speak for it.
			if err := s.DeleteProgress(ctx, name); err != nil {
				return Job{}, fmt.Errorf("purge job %q progress: %w", name, err)
			}
			cur.Stopped = true
			return cur, nil
		}
		if cur.Stopped {
			return cur, nil
		}
		next := cur
		next.Version++
		next.Stopped = true
		next.SubmittedAt = time.Now().UTC()
		rev, err := putCAS(ctx, s.jobs, name, next, cur.Revision)
		if state.IsCASFailure(err) {
			continue
		}
		if err != nil {
			return Job{}, fmt.Errorf("stop job %q: %w", name, err)
		}
		next.Revision = rev
		return next, nil
	}
}

// RevertJob submits version v of job name again, as its next version.
func (s *Store) RevertJob(ctx context.Context, name string, v uint64) (Job, error) {
	old, err := s.JobVersion(ctx, name, v)
	if err != nil {
		return Job{}, err
	}
	if old.Stopped {
		return Job{}, fmt.Errorf("job %q version %d is a stop; run a version that ran", name, v)
	}
	j, _, err := s.SubmitJob(ctx, old.Spec, SubmitOptions{Source: old.Source})
	return j, err
}
