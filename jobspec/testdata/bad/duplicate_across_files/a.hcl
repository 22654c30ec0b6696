app "database" {
  backend "systemd" {
    unit = "postgresql.service"
  }
}
