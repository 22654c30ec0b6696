app "database" {
  backend "sytemd" {
    unit = "postgresql.service"
  }
}

app "api" {
  mode = "spread"

  backend "exec" {
    command = ""
  }

  backend "systemd" {
    unit = "api service"
  }
}

app "web" {
  mode = "spread"

  backend "exec" {
  }
}
