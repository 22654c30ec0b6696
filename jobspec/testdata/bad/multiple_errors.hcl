# Everything wrong at once: all problems are reported in one run.
app "database" {
  mode  = "singleton"
  count = 2
  vip   = "10.0.1.100/33"

  sqlite {
    path      = "data/app.db"
    retention = "1y"
  }

  backend "sytemd" {
    unit = "postgresql.service"
  }
}

app "worker" {
  mode      = "replicas"
  count     = 3
  away_from = ["databse"]

  backend "exec" {
    command     = "/usr/bin/worker"
    kill_signal = "SIGTREM"
    dir         = "relative/dir"
  }
}
