app "api" {
  backend "systemd" { unit = "x.service" }
  mode = "spread"

  service "http" {
    port     = 70000
    protocol = "htp"

    check {
      type     = "icmp"
      interval = "5s"
    }
  }

  service "metrics" {
    port = 9100

    check {
      type = "tcp"
      path = "/metrics"
    }
  }

  service "admin" {
    port = 9000

    check {
      type     = "http"
      path     = "health"
      interval = "5s"
      timeout  = "10s"
    }

    check {
      type = "tcp"
    }
  }

  service "http" {
    port = 8080
  }

  service "dns" {
    port     = 53
    protocol = "udp"

    check {
      type = "tcp"
    }
  }
}
