variable "env" {
  default = "prod"
}

app "my.app" {
  backend "systemd" {
    unit = "my.service"
  }
}

app "${var.env} db" {
  backend "systemd" {
    unit = "db.service"
  }
}

app "${var.missing}-x" {
  backend "systemd" {
    unit = "x.service"
  }
}

app "worker" {
  mode      = "replicas"
  count     = 2
  away_from = ["worker", "web*"]
  near      = ["database"]

  backend "exec" {
    command = "/usr/bin/worker"
  }
}

app "idle" {
}
