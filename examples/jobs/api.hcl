# api: a stateless HTTP server on every eligible node.
#
# The backend needs nothing installed on a fresh Debian machine: perl-base is
# an Essential package, so /usr/bin/perl and IO::Socket::INET are always
# there. The one-line server answers GET /health with "ok" for the check
# below and anything else with a greeting.
#
#   gcl job validate examples/jobs/api.hcl

locals {
  port = 8080

  server = <<-PERL
    my $server = IO::Socket::INET->new(LocalPort => $ENV{PORT}, Listen => 16, ReuseAddr => 1)
      or die "listen on port $ENV{PORT}: $!";
    while (my $client = $server->accept) {
      my $request = <$client> // "";
      while (my $line = <$client>) { last if $line =~ /^\r?\n$/ }
      my ($path) = $request =~ m{^GET (\S+)};
      my $body = ($path // "") eq "/health" ? "ok\n" : "hello from the api\n";
      print $client "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
      close $client;
    }
  PERL
}

app "api" {
  mode = "spread"

  backend "exec" {
    command      = "/usr/bin/perl"
    args         = ["-MIO::Socket::INET", "-e", local.server]
    env          = { PORT = tostring(local.port) }
    user         = "nobody"
    kill_signal  = "SIGTERM"
    kill_timeout = "5s"
  }

  # Keep the API off nodes that are being drained for maintenance.
  constraint {
    attribute = "node.labels.maintenance"
    operator  = "is_not_set"
  }

  near = ["cache"]

  service "http" {
    port     = local.port
    protocol = "http"
    tags     = ["public", "v1"]

    check {
      type     = "http"
      path     = "/health"
      interval = "10s"
      timeout  = "2s"
    }
  }

  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "2m"
  }
}
