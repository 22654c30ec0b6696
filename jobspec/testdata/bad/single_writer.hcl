# A VIP and a replicated database follow the one active instance.
app "api" {
  mode = "spread"
  vip  = "10.0.1.100/24"

  backend "exec" {
    command = "/usr/bin/api"
  }
}

app "cache" {
  mode       = "ring"
  partitions = 16

  sqlite {
    path = "/data/cache.db"
  }

  backend "exec" {
    command = "/usr/bin/cache"
  }
}

app "database" {
  vip = "10.0.1.101/24"

  vip {
    address   = "10.0.1.101/24"
    interface = "eth0"
  }

  backend "systemd" {
    unit = "postgresql.service"
  }
}
