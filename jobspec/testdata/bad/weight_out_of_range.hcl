app "api" {
  backend "systemd" { unit = "x.service" }
  mode = "spread"

  affinity {
    attribute = "node.labels.zone"
    value     = "a"
    weight    = 150
  }

  affinity {
    attribute = "node.labels.zone"
    value     = "b"
    weight    = 0
  }

  affinity {
    attribute = "node.labels.zone"
    value     = "c"
    weight    = 2.5
  }

  spread {
    attribute = "node.labels.rack"
    weight    = 0
  }
}
