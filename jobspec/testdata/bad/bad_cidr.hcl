app "no-prefix" {
  backend "systemd" { unit = "x.service" }
  vip = "10.0.1.100"
}

app "bad-octet" {
  backend "systemd" { unit = "x.service" }
  vip {
    address   = "10.0.1.300/24"
    interface = "eth0"
  }
}

app "network-address" {
  backend "systemd" { unit = "x.service" }
  vip {
    address   = "10.0.1.0/24"
    interface = "eth0"
  }
}

app "loopback" {
  backend "systemd" { unit = "x.service" }
  vip {
    address   = "127.0.0.1/8"
    interface = "a-very-long-interface-name"
  }
}
