# database: one PostgreSQL primary at a time, the others on standby.
#
# The active node holds the floating address 10.0.1.100, runs the
# postgresql systemd unit and ships the SQLite write-ahead log of the
# control database to the standbys, so a failover loses nothing that was
# committed.
#
#   gcl job validate examples/jobs/database.hcl

app "database" {
  mode = "singleton"

  backend "systemd" {
    unit = "postgresql.service"
  }

  vip {
    address   = "10.0.1.100/24"
    interface = "eth0"
    arp_count = 3
  }

  sqlite {
    path              = "/var/lib/gcl/database/control.db"
    snapshot_interval = "1h"
    retention         = "72h"
  }

  # Only nodes with local SSDs are eligible to run the primary.
  constraint {
    attribute = "node.labels.disk"
    value     = "ssd"
  }

  service "postgres" {
    port     = 5432
    protocol = "tcp"
    tags     = ["primary"]

    check {
      type     = "tcp"
      interval = "5s"
      timeout  = "1s"
    }
  }

  restart {
    attempts = 2
    interval = "5m"
    delay    = "10s"
    mode     = "fail"
  }

  meta {
    owner = "platform-team"
  }
}
