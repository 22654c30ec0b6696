app "api" {
  mode = "spread"
  cont = 3

  backend "exec" {
    comand = "/usr/bin/api"
  }

  servce "http" {
    port = 80
  }

  constrain {
    attribute = "node.id"
    value     = "n1"
  }
}

job "legacy" {
}
