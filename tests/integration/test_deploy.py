"""public.advertise_ports: an edge behind a port mapping (a container, a Kubernetes Service)
names the visitors' ports in redirects and serves a Host that names them."""

import signal

import lib
from lib import DOMAIN, expect, expect_eq


@lib.timeout(60)
def test_advertise_ports_behind_a_port_mapping(ctx):
    edge = ctx.edge(start=False)
    edge.cfg["public"]["advertise_ports"] = {"https": 8443, "http": 8080}
    edge.write_config()
    edge.start()
    t = edge.tunnel_with_route("app", ["app." + DOMAIN])
    origin = ctx.origin()
    ctx.connector(edge, t["token"], ingress=[{"service": origin.url}])
    host = "app." + DOMAIN

    def get(port_in_host, scheme="https"):
        h = ["Host: %s:%d" % (host, port_in_host)] if port_in_host else []
        return ctx.curl(edge.url(host, "/p?q=1", scheme=scheme), resolve=edge.resolve(host, scheme),
                        headers=h)

    expect_eq(get(None).status, 200, "Host with the listener's port")
    expect_eq(get(8443).status, 200, "Host with the advertised https port")
    expect_eq(get(8080).status, 421, "Host with the advertised http port, over https")
    expect_eq(get(9443).status, 421, "Host with another port")
    r = get(None, "http")
    expect_eq(r.header("Location"), "https://%s:8443/p?q=1" % host, "the redirect names the advertised port")
    expect_eq(get(8080, "http").status, 301, "plain HTTP, Host with the advertised http port")
    expect_eq(get(8443, "http").status, 421, "plain HTTP, Host with the advertised https port")
    # 443: the redirect leaves the default port out. A reload applies it.
    edge.cfg["public"]["advertise_ports"] = {"https": 443}
    edge.write_config()
    mark = edge.proc.log_size()
    edge.proc.send(signal.SIGHUP)
    edge.proc.wait_log(r"configuration reloaded", 10, start=mark)
    expect_eq(get(None, "http").header("Location"), "https://%s/p?q=1" % host, "redirect after the reload")
    expect_eq(get(8080, "http").status, 421, "the http port is no longer advertised")
    expect_eq(get(443).status, 200, "Host with port 443")
    # Bad values: the file, the key and why.
    for bad, why in (({"https": 0}, "must be between 1 and 65535"), ({"https": "x"}, ""),
                     ({"htps": 443}, "unknown key")):
        edge.cfg["public"]["advertise_ports"] = bad
        edge.write_config()
        r = ctx.run([ctx.edge_bin, "serve", "--check", "--config", edge.config], check=2)
        expect("public.advertise_ports" in r.stderr and why in r.stderr and "edge.yml:" in r.stderr,
               "serve --check on advertise_ports %r: %r" % (bad, r.stderr))
