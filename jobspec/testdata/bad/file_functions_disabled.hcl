# The library never reads files unless its caller allows it.
app "api" {
  mode = "spread"

  backend "exec" {
    command = "/bin/sh"
    args    = ["-c", file("start.sh")]
  }
}
