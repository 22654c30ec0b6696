# The same name in another file: app names are unique cluster-wide.
app "database" {
  backend "systemd" {
    unit = "mysql.service"
  }
}

app "database" {
  backend "systemd" {
    unit = "mariadb.service"
  }
}
