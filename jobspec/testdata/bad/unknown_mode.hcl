app "database" {
  backend "systemd" { unit = "x.service" }
  mode = "singelton"
}

app "cache" {
  backend "systemd" { unit = "x.service" }
  mode = "sharded"
}
