# count and partitions belong to one mode each, and those modes need them.
app "database" {
  backend "systemd" { unit = "x.service" }
  mode  = "singleton"
  count = 3
}

app "api" {
  backend "systemd" { unit = "x.service" }
  mode       = "spread"
  partitions = 64
}

app "worker" {
  backend "systemd" { unit = "x.service" }
  mode = "replicas"
}

app "cache" {
  backend "systemd" { unit = "x.service" }
  mode = "ring"
}

app "sized" {
  backend "systemd" { unit = "x.service" }
  mode  = "replicas"
  count = 0
}
