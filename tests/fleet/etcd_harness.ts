/**
 * Real etcd for the fleet tests: Debian's `etcd` (etcd-server) started on
 * loopback ports the kernel picks (so parallel runs never collide), data and logs
 * in a temporary directory, every member killed and the directory removed by
 * `stop()` (use `await using`). One member, or three for the fault cases; TLS
 * (with client certificates) on request.
 *
 * @module
 */

import { delay, freePort, waitFor } from "./wait.ts";

/** One member of a test cluster. */
export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  /** Null while the member is stopped. */
  process: Deno.ChildProcess | null;
}

/** TLS files of a cluster (PEM paths). */
export interface EtcdTls {
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Options of {@link startEtcd}. */
export interface EtcdOptions {
  /** 1 (default) or 3 members. */
  members?: number;
  /** Serve clients over TLS and require client certificates. */
  tls?: boolean;
  /** Further etcd flags (such as "--auth-token-ttl=1"). */
  extraArgs?: string[];
}

/** A running test cluster. */
export interface EtcdCluster extends AsyncDisposable {
  dir: string;
  members: EtcdMember[];
  /** Client URLs of every member. */
  endpoints: string[];
  tls?: EtcdTls;
  /** Runs etcdctl against the cluster (TLS settings included). */
  etcdctl(args: string[], options?: { env?: Record<string, string> }): Promise<string>;
  /** Kills member `index` with `signal` (SIGKILL by default) and waits for it to end. */
  kill(index: number, signal?: Deno.Signal): Promise<void>;
  /** Starts a killed member again, on the same ports and data. */
  restart(index: number): Promise<void>;
  /** The index of the current leader. */
  leader(): Promise<number>;
  /** Kills every member and removes the data. */
  stop(): Promise<void>;
}

async function run(command: string, args: string[], env?: Record<string, string>): Promise<string> {
  const output = await new Deno.Command(command, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${output.code}): ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
  return stdout;
}

/** Makes a CA, a server certificate for 127.0.0.1 and a client certificate, with openssl. */
export async function makeCertificates(dir: string): Promise<EtcdTls> {
  const tls: EtcdTls = {
    caFile: `${dir}/ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server-key.pem`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client-key.pem`,
  };
  const caKey = `${dir}/ca-key.pem`;
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    tls.caFile,
    "-days",
    "2",
    "-subj",
    "/CN=liveupdate-fleet-test-ca",
  ]);
  const sign = async (name: string, cert: string, key: string, ext: string) => {
    const csr = `${dir}/${name}.csr`;
    const extFile = `${dir}/${name}.ext`;
    await Deno.writeTextFile(extFile, ext);
    await run("openssl", [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      csr,
      "-subj",
      `/CN=${name}`,
    ]);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      tls.caFile,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-out",
      cert,
      "-days",
      "2",
      "-extfile",
      extFile,
    ]);
  };
  await sign(
    "server",
    tls.serverCert,
    tls.serverKey,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  await sign("client", tls.clientCert, tls.clientKey, "extendedKeyUsage=clientAuth\n");
  return tls;
}

function memberArgs(
  member: EtcdMember,
  cluster: string,
  token: string,
  tls: EtcdTls | undefined,
  extra: readonly string[] = [],
): string[] {
  const args = [
    "--name",
    member.name,
    "--data-dir",
    member.dataDir,
    "--listen-client-urls",
    member.clientUrl,
    "--advertise-client-urls",
    member.clientUrl,
    "--listen-peer-urls",
    member.peerUrl,
    "--initial-advertise-peer-urls",
    member.peerUrl,
    "--initial-cluster",
    cluster,
    "--initial-cluster-state",
    "new",
    "--initial-cluster-token",
    token,
    "--logger",
    "zap",
    "--log-outputs",
    member.logFile,
    "--heartbeat-interval",
    "100",
    "--election-timeout",
    "1000",
  ];
  if (tls) {
    args.push(
      "--cert-file",
      tls.serverCert,
      "--key-file",
      tls.serverKey,
      "--trusted-ca-file",
      tls.caFile,
      "--client-cert-auth",
    );
  }
  return [...args, ...extra];
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command("etcd", {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function stopProcess(member: EtcdMember, signal: Deno.Signal = "SIGKILL"): Promise<void> {
  const process = member.process;
  if (process === null) return;
  member.process = null;
  try {
    process.kill(signal);
  } catch {
    // Already gone.
  }
  await process.status;
}

/** Starts a test cluster and waits until it has a leader. Stop it with `stop()`. */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdCluster> {
  const count = options.members ?? 1;
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-fleet-etcd-" });
  const tls = options.tls ? await makeCertificates(dir) : undefined;
  const scheme = tls ? "https" : "http";
  const members: EtcdMember[] = [];
  for (let i = 0; i < count; i++) {
    const name = `m${i}`;
    members.push({
      name,
      clientUrl: `${scheme}://127.0.0.1:${freePort()}`,
      peerUrl: `http://127.0.0.1:${freePort()}`,
      dataDir: `${dir}/${name}.etcd`,
      logFile: `${dir}/${name}.log`,
      process: null,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const token = `liveupdate-fleet-test-${crypto.randomUUID()}`;
  const tlsArgs = tls
    ? ["--cacert", tls.caFile, "--cert", tls.clientCert, "--key", tls.clientKey]
    : [];
  const etcdctl = (args: string[], opts: { env?: Record<string, string> } = {}) =>
    run("etcdctl", [
      `--endpoints=${members.map((m) => m.clientUrl).join(",")}`,
      "--command-timeout=10s",
      ...tlsArgs,
      ...args,
    ], { ETCDCTL_API: "3", ...opts.env });
  const statusOf = async (member: EtcdMember) => {
    const out = await run("etcdctl", [
      `--endpoints=${member.clientUrl}`,
      "--command-timeout=3s",
      ...tlsArgs,
      "endpoint",
      "status",
      "--write-out=json",
    ], { ETCDCTL_API: "3" });
    const [status] = JSON.parse(out) as {
      Status: { header: { member_id: number }; leader: number };
    }[];
    return status!.Status;
  };
  const cluster: EtcdCluster = {
    dir,
    ...(tls ? { tls } : {}),
    members,
    endpoints: members.map((m) => m.clientUrl),
    etcdctl,
    async kill(index, signal = "SIGKILL") {
      await stopProcess(members[index]!, signal);
    },
    async restart(index) {
      const member = members[index]!;
      if (member.process !== null) throw new Error(`member ${member.name} is running`);
      const args = memberArgs(member, initialCluster, token, tls, options.extraArgs);
      args[args.indexOf("new")] = "existing";
      member.process = spawn(args);
      await waitFor(async () => {
        try {
          await statusOf(member);
          return true;
        } catch {
          return false;
        }
      }, { timeoutMs: 30_000, what: `etcd member ${member.name} to come back` });
    },
    async leader() {
      for (const [index, member] of members.entries()) {
        if (member.process === null) continue;
        try {
          const status = await statusOf(member);
          if (status.leader === status.header.member_id) return index;
        } catch {
          // Try the next member.
        }
      }
      throw new Error("no etcd member is the leader");
    },
    async stop() {
      await Promise.all(members.map((member) => stopProcess(member)));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    [Symbol.asyncDispose]() {
      return cluster.stop();
    },
  };
  try {
    for (const member of members) {
      member.process = spawn(memberArgs(member, initialCluster, token, tls, options.extraArgs));
    }
    await waitFor(async () => {
      for (const member of members) {
        if (member.process === null) return false;
      }
      try {
        await cluster.leader();
        return true;
      } catch {
        return false;
      }
    }, { timeoutMs: 60_000, what: `a ${count}-member etcd cluster to elect a leader` });
    return cluster;
  } catch (error) {
    const logs = await Promise.all(
      members.map((m) => Deno.readTextFile(m.logFile).catch(() => "(no log)")),
    );
    await cluster.stop();
    throw new Error(
      `etcd did not start: ${(error as Error).message}\n${
        logs.map((l) => l.slice(-2000)).join("\n")
      }`,
    );
  }
}

export { delay };
