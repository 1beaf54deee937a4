"""What deploy/ ships, run for real on loopback: the Kubernetes manifests' edge and connector
configurations (edge.yml and config.yml from their ConfigMaps, the container arguments, probes and
Service ports), `make install` and the systemd units it installs, the runtime packages of the
container image; and public.advertise_ports, which lets an edge behind a port mapping (a container,
a Kubernetes Service) name the visitors' ports. The container images themselves are built and run
by `make container-check` (needs a container engine; not part of `make test`)."""

import os
import re
import shutil
import signal
import subprocess

import lib
from lib import DOMAIN, expect, expect_eq

DEPLOY = os.path.join(lib.REPO, "deploy")


def load_manifest(name):
    import yaml  # python3-yaml (make deps); only these tests read YAML from Python

    with open(os.path.join(DEPLOY, "kubernetes", name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def one(by_kind, kind):
    expect_eq(len(by_kind.get(kind, [])), 1, "number of %s objects" % kind)
    return by_kind[kind][0]


class Pod:
    """A pod's filesystem on loopback: each volumeMount of |container| becomes a directory of the
    test, filled like the kubelet would (ConfigMap keys as files, TLS Secrets from the test PKI,
    an empty data volume). Paths and listen ports in files are rewritten by rewrite()."""

    def __init__(self, ctx, name, spec, container, configmaps, tls_files):
        self.ctx = ctx
        self.mounts = {}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for m in container.get("volumeMounts", []):
            d = ctx.mkdir(name, m["name"])
            self.mounts[m["mountPath"]] = d
            v = volumes.get(m["name"])
            if v is None:  # a volumeClaimTemplate: an empty directory
                continue
            if "configMap" in v:
                cm = configmaps[v["configMap"]["name"]]
                for key, text in cm["data"].items():
                    lib.write_file(os.path.join(d, key), text)
            elif "secret" in v:
                sec = v["secret"]["secretName"]
                expect(sec in tls_files, "secret %s is not one the test knows how to fill" % sec)
                mode = v["secret"].get("defaultMode", 0o644)
                for key, src in tls_files[sec].items():
                    shutil.copyfile(src, os.path.join(d, key))
                    os.chmod(os.path.join(d, key), mode)
        self.ports = {}

    def path(self, p):
        """The test's path for the pod's path |p| (longest mount first)."""
        for mp in sorted(self.mounts, key=len, reverse=True):
            if p == mp or p.startswith(mp.rstrip("/") + "/"):
                return self.mounts[mp] + p[len(mp.rstrip("/")):]
        raise AssertionError("%s is on no volume of the pod (mounts: %s)" % (p, sorted(self.mounts)))

    def rewrite(self, text, extra=()):
        """Pod paths to test paths, 0.0.0.0:PORT and 127.0.0.1:PORT to free loopback ports (the
        mapping is kept in self.ports), then the (old, new) pairs of |extra|."""
        for mp in sorted(self.mounts, key=len, reverse=True):
            text = re.sub(re.escape(mp.rstrip("/")) + r"(?=/|$|[\s\"',\]}])", self.mounts[mp], text,
                          flags=re.M)

        def port(m):
            p = int(m.group(2))
            if p not in self.ports:
                self.ports[p] = lib.free_port()
            return "127.0.0.1:%d" % self.ports[p]

        text = re.sub(r"\b(0\.0\.0\.0|127\.0\.0\.1):(\d+)\b", port, text)
        for old, new in extra:
            expect(old in text, "%r not found in the manifest's config" % old)
            text = text.replace(old, new)
        return text


def container_of(workload):
    spec = workload["spec"]["template"]["spec"]
    expect_eq(len(spec["containers"]), 1, "containers in %s" % workload["metadata"]["name"])
    return spec, spec["containers"][0]


def named_port(container, name):
    for p in container.get("ports", []):
        if p.get("name") == name:
            return p["containerPort"]
    raise AssertionError("container %s has no port named %r" % (container["name"], name))


@lib.timeout(90)
def test_kubernetes_manifests_carry_a_request(ctx):
    edge_m = load_manifest("edge.yaml")
    conn_m = load_manifest("connector.yaml")
    pki = ctx.pki

    # ---- the edge, from its ConfigMap and StatefulSet
    sts = one(edge_m, "StatefulSet")
    svc = one(edge_m, "Service")
    cms = {cm["metadata"]["name"]: cm for cm in edge_m["ConfigMap"]}
    spec, c = container_of(sts)
    edge_c = c
    for vct in sts["spec"].get("volumeClaimTemplates", []):
        expect(any(m["name"] == vct["metadata"]["name"] for m in c["volumeMounts"]),
               "volumeClaimTemplate %s is not mounted" % vct["metadata"]["name"])
    tls = {"culvert-edge-public": {"tls.crt": os.path.join(pki, "public.pem"),
                                   "tls.key": os.path.join(pki, "public.key")},
           "culvert-edge-tunnel": {"tls.crt": os.path.join(pki, "tunnel.pem"),
                                   "tls.key": os.path.join(pki, "tunnel.key")}}
    pod = Pod(ctx, "edge-pod", spec, c, cms, tls)
    args = list(c["args"])
    cfg_at = args.index("--config") + 1
    pod_cfg = args[cfg_at]
    cfg_path = pod.path(pod_cfg)
    expect(os.path.exists(cfg_path), "the edge's --config %s is not provided by a mount" % pod_cfg)
    with open(cfg_path) as f:
        original = f.read()
    # The Service sends its ports to the container ports the edge listens on.
    for sp in svc["spec"]["ports"]:
        cport = named_port(c, sp["targetPort"])
        expect(re.search(r"0\.0\.0\.0:%d\b" % cport, original),
               "Service port %s -> %s (%d): edge.yml does not listen there" % (
                   sp["name"], sp["targetPort"], cport))
    ports = {sp["name"]: sp["port"] for sp in svc["spec"]["ports"]}
    m = re.search(r"advertise_ports:\s*\{\s*https:\s*(\d+),\s*http:\s*(\d+)\s*\}", original)
    expect(m, "edge.yml has no public.advertise_ports: {https: N, http: N}")
    expect_eq((int(m.group(1)), int(m.group(2))), (ports["https"], ports["http"]),
              "advertise_ports against the Service's ports")
    text = pod.rewrite(original)
    tunnel_port = pod.ports[named_port(c, "tunnel")]
    text = text.replace('advertise: ["edge.example.com:7844"]', 'advertise: ["127.0.0.1:%d"]' % tunnel_port)
    lib.write_file(cfg_path, text)
    r = ctx.run([ctx.edge_bin] + args[:cfg_at] + [cfg_path, "--check"] + args[cfg_at + 1:], check=0)
    expect("configuration OK" in r.stdout, "serve --check: %r" % r.stdout)
    edge_proc = ctx.spawn("edge", [ctx.edge_bin] + args[:cfg_at] + [cfg_path] + args[cfg_at + 1:])

    def cli(*a, check=0):
        return ctx.run([ctx.edge_bin] + list(a) + ["--config", cfg_path], check=check)

    ctx.wait_until(lambda: edge_proc.alive() and cli("tunnel", "list", check=None).returncode == 0, 15,
                   "the manifest's edge to answer `tunnel list`")
    import json
    t = json.loads(cli("tunnel", "create", "home", "--output", "json").stdout)
    ctx.add_token("tunnel home", t["token"])
    host = "app." + DOMAIN
    cli("route", "add", host, "home")

    # ---- the connector, from its ConfigMap, Secret and Deployment
    dep = one(conn_m, "Deployment")
    cms = {cm["metadata"]["name"]: cm for cm in conn_m["ConfigMap"]}
    spec, c = container_of(dep)
    cpod = Pod(ctx, "connector-pod", spec, c, cms, {})
    args = list(c["args"])
    cfg_at = args.index("--config") + 1
    ccfg = cpod.path(args[cfg_at])
    with open(ccfg) as f:
        original = f.read()
    metrics = named_port(c, "metrics")
    expect(re.search(r"^metrics: 0\.0\.0\.0:%d$" % metrics, original, re.M),
           "config.yml's metrics address is not the pod's port %d the probes use" % metrics)
    origin = ctx.origin("app")
    lib.write_file(ccfg, cpod.rewrite(original, [
        ("hostname: app.example.com", "hostname: " + host),
        ("http://app.default.svc.cluster.local:80", origin.url)]))
    r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", ccfg], check=0)
    expect_eq(r.stderr.strip(), "", "warnings of `ingress validate` on the manifest's config.yml")
    env = dict(ctx.env)
    for e in c.get("env", []):
        ref = e["valueFrom"]["secretKeyRef"]
        secret = next(s for s in conn_m["Secret"] if s["metadata"]["name"] == ref["name"])
        expect(ref["key"] in secret["stringData"], "Secret %s has no key %s" % (ref["name"], ref["key"]))
        env[e["name"]] = t["token"]
    expect("TUNNEL_TOKEN" in env, "the Deployment does not give the connector TUNNEL_TOKEN")
    # The manifest's edge has no tunnel.ca (a public certificate there); the test PKI's is private.
    conn = ctx.spawn("connector", [ctx.connector_bin] + args[:cfg_at] + [ccfg] + args[cfg_at + 1:] +
                     ["--edge-ca", os.path.join(pki, "ca.pem"), "--retry-base", "100ms"], env=env)
    mport = cpod.ports[metrics]
    for probe in ("readinessProbe", "livenessProbe"):
        path = c[probe]["httpGet"]["path"]
        expect_eq(named_port(c, c[probe]["httpGet"]["port"]), metrics, "%s port" % probe)
        ctx.wait_until(lambda: conn.alive() and (lib.http_get("127.0.0.1", mport, path) or (0,))[0] == 200,
                       15, "the connector's %s (%s) to answer 200" % (probe, path))

    # /ready is cloudflared's: the connector's own id (as the edge lists it) and its connections.
    ready = json.loads(lib.http_get("127.0.0.1", mport, "/ready")[1])
    info = json.loads(cli("tunnel", "info", "home", "--output", "json").stdout)
    expect_eq(ready.get("connectorId"), info["connectors"][0]["id"], "/ready connectorId")
    expect(1 <= ready.get("readyConnections", 0) <= 4, "/ready readyConnections: %r" % ready)

    # ---- a request through both, and the redirect names the Service's port
    https = pod.ports[named_port(edge_c, "https")]
    r = ctx.curl("https://%s:%d/echo" % (host, https), resolve=["%s:%d:127.0.0.1" % (host, https)])
    expect_eq(r.status, 200, "GET through the manifests' edge and connector")
    expect_eq(r.json()["name"], "app", "the origin that answered")
    r = ctx.curl("https://%s:%d/echo" % (host, https), resolve=["%s:%d:127.0.0.1" % (host, https)],
                 headers=["Host: %s:443" % host])
    expect_eq(r.status, 200, "Host naming the Service's port 443")
    http = pod.ports[named_port(edge_c, "http")]
    r = ctx.curl("http://%s:%d/a?b=c" % (host, http), resolve=["%s:%d:127.0.0.1" % (host, http)])
    expect_eq(r.status, 301, "plain HTTP")
    expect_eq(r.header("Location"), "https://%s/a?b=c" % host, "the redirect (port 443 is the default)")
    conn.stop()
    edge_proc.stop()


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


def _packages_of_libraries(binary):
    """Debian packages holding the shared libraries |binary| loads (libc6 aside)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    pkgs = set()
    for line in out.splitlines():
        m = re.search(r"=>\s+(/\S+)", line)
        if not m:
            continue
        path = os.path.realpath(m.group(1))
        r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if r.returncode != 0:  # /lib vs /usr/lib (merged /usr): ask for the other spelling
            alt = path[4:] if path.startswith("/usr/") else "/usr" + path
            r = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
        expect(r.returncode == 0, "no Debian package holds %s (loaded by %s)" % (path, binary))
        pkgs.add(r.stdout.split(":")[0])
    return pkgs - {"libc6"}


@lib.full_only("the image holds the plain build; the sanitizer build loads its runtimes too")
@lib.timeout(60)
def test_container_image_installs_the_libraries_the_binaries_load(ctx):
    with open(os.path.join(DEPLOY, "Containerfile")) as f:
        text = f.read()
    stages = re.split(r"^FROM ", text, flags=re.M)
    runtime = next(s for s in stages if re.match(r"\S+ AS runtime\b", s))
    installed = set(re.findall(r"\b(lib[a-z0-9.+-]+)\b", runtime.split("rm -rf")[0]))
    for b in (ctx.edge_bin, ctx.connector_bin):
        missing = _packages_of_libraries(b) - installed
        expect(not missing, "%s loads libraries from %s, which the runtime stage does not install" % (
            os.path.basename(b), sorted(missing)))


@lib.timeout(120)
def test_make_install_and_its_systemd_units(ctx):
    dest = ctx.mkdir("dest")
    # The build under test: the plain one, or the sanitizer one (make knows it by SANITIZE=1).
    sanitize = "1" if os.path.basename(os.path.normpath(ctx.build)) == "asan" else "0"
    r = ctx.run(["make", "-C", lib.REPO, "--no-print-directory", "-s", "install", "DESTDIR=" + dest,
                 "PREFIX=/opt/culvert", "SANITIZE=" + sanitize], timeout=90)
    expect_eq(r.returncode, 0, "make install: %s" % r.stderr[-2000:])
    for b in ("culvert-edge", "culvert-connector"):
        p = os.path.join(dest, "opt/culvert/bin", b)
        expect(os.access(p, os.X_OK), "%s not installed as an executable" % p)
        v = ctx.run([p, "--version"], check=0)
        expect(v.stdout.startswith(b + " "), "%s --version: %r" % (p, v.stdout))
    units = os.path.join(dest, "opt/culvert/lib/systemd/system")
    for u in ("culvert-edge.service", "culvert-connector.service"):
        with open(os.path.join(units, u)) as f:
            text = f.read()
        m = re.search(r"^ExecStart=(\S+)", text, re.M)
        expect(m and m.group(1).startswith("/opt/culvert/bin/"), "%s: ExecStart %r not under PREFIX" % (
            u, m and m.group(1)))
        if shutil.which("systemd-analyze") is None:
            ctx.note("systemd-analyze not installed: %s not verified" % u)
            continue
        # verify checks that ExecStart's program exists: point it at the DESTDIR copy.
        local = ctx.path(u)
        lib.write_file(local, text.replace("/opt/culvert/bin/", dest + "/opt/culvert/bin/"))
        v = ctx.run(["systemd-analyze", "verify", local], timeout=60)
        expect(v.returncode == 0 and "Unknown" not in v.stderr and "ignoring" not in v.stderr,
               "systemd-analyze verify %s: rc %d\n%s" % (u, v.returncode, v.stderr))
