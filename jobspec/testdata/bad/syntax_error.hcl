app "api" {
  mode = "spread"
  backend "exec" {
    command = "/bin/true"
    args    = ["a" "b"]
  }
}

app "web" {
  mode =
}
