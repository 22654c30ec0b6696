# worker: three queue consumers on three different nodes, never on a node
# that runs the database primary, so a busy worker cannot slow it down.
#
#   gcl job validate examples/jobs/worker.hcl

app "worker" {
  mode  = "replicas"
  count = 3

  away_from = ["database"]

  backend "exec" {
    command = "/bin/sh"
    # A stand-in for a real consumer: it waits for work that never comes,
    # and exits promptly on SIGTERM.
    args = ["-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
  }

  constraint {
    operator = "distinct_hosts"
  }

  constraint {
    attribute = "node.labels.arch"
    operator  = "regexp"
    value     = "^(amd64|arm64)$"
  }

  restart {
    attempts = 5
    interval = "10m"
    delay    = "5s"
    mode     = "delay"
  }
}
