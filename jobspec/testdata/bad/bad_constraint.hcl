app "api" {
  backend "systemd" { unit = "x.service" }
  mode = "spread"

  constraint {
    attribute = "node.labels.arch"
    operator  = "regexp"
    value     = "^(amd64|arm64"
  }

  constraint {
    attribute = "node.label.zone"
    value     = "eu-1"
  }

  constraint {
    attribute = "attr.kernel.name"
    value     = "linux"
  }

  constraint {
    attribute = "node.labels.version"
    operator  = "version"
    value     = ">= 1.x"
  }

  constraint {
    attribute = "node.labels.gpu"
    operator  = "is_set"
    value     = "true"
  }

  constraint {
    attribute = "node.id"
    operator  = "distinct_hosts"
  }

  constraint {
    attribute = "node.labels.disk"
    operator  = "=="
    value     = "ssd"
  }

  constraint {
    attribute = "node.labels.disk"
    operator  = "set_contains"
  }

  constraint {
    value = "x"
  }
}
