# Valid, with warnings: the interface is inferred on each node.
app "database" {
  vip = "10.0.1.100/24"

  backend "systemd" {
    unit = "postgresql.service"
  }
}

app "ldap" {
  vip {
    address = "10.0.2.50/24"
  }

  backend "systemd" {
    unit = "slapd.service"
  }
}
