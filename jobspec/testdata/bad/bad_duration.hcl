app "api" {
  backend "exec" {
    command      = "/bin/true"
    kill_timeout = "10 seconds"
  }

  restart {
    interval = "-5m"
    delay    = 30
  }

  update {
    min_healthy_time = "30s"
    healthy_deadline = "10s"
  }
}
