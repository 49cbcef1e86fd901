/**
 * The ABI checks, run inside the test guest on the real Linux 7.3 kernel: every
 * request of the agent's mainline backend, its successes and its errnos as the
 * backend reports them, before a real KHO kexec (boot 1) and after it (boot 2).
 * Each check reports one `@@LUO` record; tests/mainline/abi_test.ts asserts them.
 *
 * Boot 1 leaves behind, for boot 2:
 * - session "abi-keep": memfd token 1 (1 MiB + 123 bytes of pattern, position
 *   4096, sealed against shrinking), memfd token 2 ("second file" + "X" written
 *   after preserving);
 * - session "abi-empty": no files;
 * - session "abi-unclaimed": one memfd, never retrieved in boot 2, only finished;
 * - session "abi-closed": closed before the kexec, so gone after it.
 *
 * @module
 */

import { cString, openLibc } from "../../../agent/host/libc.ts";
import { realClock } from "../../../agent/host/real_host.ts";
import { IOCTL, LAYOUT } from "../../../agent/kernel/mainline/abi.ts";
import { LiveupdateDevice } from "../../../agent/kernel/mainline/device.ts";
import { isKhoTree, readKhoTree } from "../../../agent/kernel/mainline/kho.ts";
import {
  compareHandoverAbi,
  runningHandoverAbi,
  verifyHandover,
} from "../../../agent/compat/compatible.ts";
import { readAbiMetadata } from "../../../agent/compat/metadata.ts";
import { libcKernelFs } from "../../../agent/host/libc_kernel_fs.ts";
import {
  checkCmdline,
  checkKexecToolsLoader,
  checkLoadedKernel,
} from "../../../agent/kernel/mainline/preflight.ts";
import { type Session, sessionNameFromProc } from "../../../agent/kernel/mainline/session.ts";
import {
  addSeals,
  closeOnExec,
  fdinfo,
  kexecFileLoad,
  memfdWith,
  nextCmdline,
  pattern,
  pipe,
  readAll,
  rebootIntoLoadedKernel,
  SEAL,
  seals,
  seek,
  sha256,
  writeAll,
} from "./guest_libc.ts";
import { bootNumber, check, emit, ensure, expectRefusal, expectRefusalAsync } from "./report.ts";

const DEVICE = "/dev/liveupdate";
const BIG_SIZE = 1024 * 1024 + 123;
const BIG_SEED = 0x5eed;
const O_RDWR = 2;

const libc = openLibc();
const boot = bootNumber();
const kernelFs = libcKernelFs(libc);
const device = new LiveupdateDevice({
  libc,
  clock: realClock,
  path: DEVICE,
  busyTimeout: 2000,
});
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A raw ioctl on `fd`, returning the errno name or "ok". */
function rawIoctl(fd: number, request: number, argument: Uint8Array<ArrayBuffer>): string {
  return libc.symbols.ioctl(fd, BigInt(request), argument) < 0 ? libc.errnoName() : "ok";
}

/** Opens the device raw (for checks of the kernel's own answers). */
function rawOpen(): number {
  const fd = libc.symbols.open(cString(DEVICE), O_RDWR, 0);
  if (fd < 0) throw new Error(`open(${DEVICE}) failed: ${libc.errnoName()}`);
  return fd;
}

function closeFd(fd: number): void {
  libc.symbols.close(fd);
}

function dumpKho(direction: string) {
  const base = `/sys/kernel/debug/kho/${direction}`;
  const walk = (dir: string): string[] => {
    const out: string[] = [];
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) out.push(...walk(path));
      else {
        let size = -1;
        let head = "";
        try {
          const bytes = Deno.readFileSync(path);
          size = bytes.length;
          head = [...bytes.subarray(0, 96)].map((b) => b.toString(16).padStart(2, "0")).join("");
        } catch (e) {
          head = String(e);
        }
        out.push(`${path} ${size} ${head}`);
      }
    }
    return out;
  };
  try {
    emit({ type: "debug", direction, files: walk(base) });
  } catch (e) {
    emit({ type: "debug", direction, error: String(e) });
  }
}

async function khoReport(direction: "out" | "in") {
  const tree = await readKhoTree(kernelFs, "/sys/kernel/debug", direction);
  // The raw files, for diagnosis, whenever the reader had something to say.
  if (!isKhoTree(tree) || tree.problems.length > 0) dumpKho(direction);
  ensure(isKhoTree(tree), `kho/${direction} unreadable: ${"reason" in tree ? tree.reason : ""}`);
  return tree;
}

/** `liveupdate-agent status --json` in a child process, as an operator runs it. */
// deno-lint-ignore no-explicit-any
async function statusJson(): Promise<Record<string, any>> {
  const output = await new Deno.Command("/usr/bin/deno", {
    args: [
      "run",
      "--allow-all",
      "--cached-only",
      "--no-check",
      "agent/main.ts",
      "status",
      "--json",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  ensure(output.success, `status failed: ${decoder.decode(output.stderr)}`);
  return JSON.parse(decoder.decode(output.stdout));
}

async function bootOne(): Promise<void> {
  const sessions: Session[] = [];
  const fds: number[] = [];

  await check(boot, "device-node", () => {
    const info = Deno.statSync(DEVICE);
    ensure(info.isCharDevice, `${DEVICE} is not a character device`);
    return { mode: (info.mode ?? 0).toString(8) };
  });

  await check(boot, "open-exclusive", async () => {
    const held = rawOpen();
    try {
      const second = libc.symbols.open(cString(DEVICE), O_RDWR, 0);
      const raw = second < 0 ? libc.errnoName() : "opened";
      if (second >= 0) closeFd(second);
      ensure(raw === "EBUSY", `second raw open gave ${raw}, not EBUSY`);
      const quick = new LiveupdateDevice({
        libc,
        clock: realClock,
        path: DEVICE,
        busyTimeout: 300,
      });
      const refusal = await expectRefusalAsync(() => quick.use(() => undefined), {
        errno: "EBUSY",
        request: "open",
        says: "held by another process",
      });
      ensure(refusal.exitCode === 7, `exit code ${refusal.exitCode}, not 7 (busy)`);
      return refusal;
    } finally {
      closeFd(held);
    }
  });

  await check(boot, "open-busy-retried", async () => {
    const held = rawOpen();
    const release = setTimeout(() => closeFd(held), 400);
    try {
      const started = performance.now();
      await device.use(() => undefined);
      return { waitedMs: Math.round(performance.now() - started) };
    } finally {
      clearTimeout(release);
    }
  });

  await check(boot, "status-json", async () => {
    const status = await statusJson();
    const kernel = status.kernel;
    ensure(kernel.available === true && kernel.backend === "mainline", JSON.stringify(kernel));
    const sessions = kernel.sessions;
    ensure(kernel.state === null && kernel.features.devices === false, JSON.stringify(kernel));
    ensure(sessions.cmdline.ok === true, JSON.stringify(sessions.cmdline));
    ensure(sessions.getNameIoctl === true, "GET_NAME not reported for 7.3");
    ensure(sessions.devices.preserved === false, "devices reported as preserved");
    ensure(sessions.outgoing.luo === "luo-v5", JSON.stringify(sessions.outgoing));
    ensure(
      sessions.incoming.previousRelease === null && sessions.incoming.problem !== null,
      "an incoming handover in a cold boot",
    );
    ensure(status.handover.status !== "present", JSON.stringify(status.handover));
    ensure(
      status.compat.running.compatible?.luo === "luo-v5",
      JSON.stringify(status.compat.running),
    );
    ensure(status.compat.verdict.outcome === "compatible", JSON.stringify(status.compat));
    // The whole document: the host checks it against the published schema.
    return { document: status };
  });

  let keep!: Session;
  await check(boot, "create-session", async () => {
    keep = await device.createSession("abi-keep");
    sessions.push(keep);
    ensure(keep.fd >= 0 && keep.direction === "outgoing", "bad session");
    ensure(closeOnExec(libc, keep.fd), "session fd is not close-on-exec");
    return { fd: keep.fd, cloexec: true };
  });

  await check(boot, "device-closed-after-request", () => {
    // The backend closed the device after creating the session: a raw open works.
    closeFd(rawOpen());
    return { reopened: true };
  });

  await check(
    boot,
    "create-duplicate-name",
    () =>
      expectRefusalAsync(() => device.createSession("abi-keep"), {
        errno: "EEXIST",
        request: "create-session",
        says: "is taken",
      }),
  );

  await check(boot, "create-name-limits", async () => {
    const longest = "n".repeat(63);
    const session = await device.createSession(longest);
    const name = session.kernelName();
    session.close();
    ensure(name === longest, `63-byte name came back as ${name.length} bytes`);
    const agent = await expectRefusalAsync(() => device.createSession("n".repeat(64)), {
      errno: "EINVAL",
      says: "at most 63",
    });
    const emptyAgent = await expectRefusalAsync(() => device.createSession(""), {
      errno: "EINVAL",
      says: "empty",
    });
    // The kernel's own answers, past the backend's check.
    const fd = rawOpen();
    try {
      const unterminated = new Uint8Array(LAYOUT.session.size);
      new DataView(unterminated.buffer).setUint32(0, LAYOUT.session.size, true);
      unterminated.fill(0x6e, LAYOUT.session.name);
      const kernel64 = rawIoctl(fd, IOCTL.createSession, unterminated);
      const empty = new Uint8Array(LAYOUT.session.size);
      new DataView(empty.buffer).setUint32(0, LAYOUT.session.size, true);
      const kernelEmpty = rawIoctl(fd, IOCTL.createSession, empty);
      ensure(kernel64 === "EINVAL", `kernel: 64-byte name gave ${kernel64}`);
      ensure(kernelEmpty === "EINVAL", `kernel: empty name gave ${kernelEmpty}`);
      return { agent: agent.errno, emptyAgent: emptyAgent.errno, kernel64, kernelEmpty };
    } finally {
      closeFd(fd);
    }
  });

  await check(boot, "struct-size-rules", () => {
    const fd = rawOpen();
    try {
      // A larger struct with a non-zero byte the kernel does not know: E2BIG.
      const big = new Uint8Array(LAYOUT.session.size + 8);
      const view = new DataView(big.buffer);
      view.setUint32(0, big.length, true);
      big.set(encoder.encode("abi-size"), LAYOUT.session.name);
      big[big.length - 1] = 1;
      const tail = rawIoctl(fd, IOCTL.createSession, big);
      // The same larger struct with a zeroed tail is accepted.
      big[big.length - 1] = 0;
      const zeroTail = rawIoctl(fd, IOCTL.createSession, big);
      if (zeroTail === "ok") closeFd(view.getInt32(LAYOUT.session.fd, true));
      // Shorter than the name field's end: EINVAL.
      const small = new Uint8Array(LAYOUT.session.size);
      new DataView(small.buffer).setUint32(0, 8, true);
      const short = rawIoctl(fd, IOCTL.createSession, small);
      // An unknown command number: EINVAL; a known number with size bits: ENOTTY.
      const unknown = rawIoctl(fd, (0xba << 8) | 0x02, new Uint8Array(LAYOUT.session.size));
      const sized = rawIoctl(fd, 0xc000_0000 | (72 << 16) | (0xba << 8), big);
      ensure(tail === "E2BIG", `non-zero tail gave ${tail}`);
      ensure(zeroTail === "ok", `zero tail gave ${zeroTail}`);
      ensure(short === "EINVAL", `short struct gave ${short}`);
      ensure(unknown === "EINVAL", `unknown command gave ${unknown}`);
      ensure(sized === "ENOTTY", `_IOWR-encoded command gave ${sized}`);
      return { tail, zeroTail, short, unknown, sized };
    } finally {
      closeFd(fd);
    }
  });

  await check(boot, "get-name", () => {
    const viaIoctl = keep.kernelName();
    const viaProc = sessionNameFromProc(libc, keep.fd);
    ensure(viaIoctl === "abi-keep" && viaProc === "abi-keep", `${viaIoctl} / ${viaProc}`);
    return { viaIoctl, viaProc };
  });

  const big = pattern(BIG_SIZE, BIG_SEED);
  let bigFd = -1;
  let secondFd = -1;
  await check(boot, "preserve-memfd", async () => {
    bigFd = memfdWith(libc, "abi-big", big);
    fds.push(bigFd);
    // Position 4096 and a seal: both must come back after the kexec.
    seek(libc, bigFd, 4096);
    addSeals(libc, bigFd, SEAL.shrink);
    keep.preserveFd(bigFd, 1n);
    return {
      size: BIG_SIZE,
      sha256: await sha256(big),
      pos: fdinfo(bigFd, "pos"),
      seals: seals(libc, bigFd),
    };
  });

  await check(
    boot,
    "preserve-same-file-twice",
    () =>
      expectRefusal(() => keep.preserveFd(bigFd, 2n), {
        errno: "EBUSY",
        request: "preserve-fd",
        says: "already preserved",
      }),
  );

  await check(boot, "preserve-in-second-session", async () => {
    const empty = await device.createSession("abi-empty");
    sessions.push(empty);
    return expectRefusal(() => empty.preserveFd(bigFd, 1n), {
      errno: "EBUSY",
      request: "preserve-fd",
    });
  });

  await check(boot, "preserve-token-taken", () => {
    secondFd = memfdWith(libc, "abi-second", encoder.encode("second file"));
    fds.push(secondFd);
    const refusal = expectRefusal(() => keep.preserveFd(secondFd, 1n), {
      errno: "EEXIST",
      request: "preserve-fd",
      says: "token 1",
    });
    keep.preserveFd(secondFd, 2n);
    return refusal;
  });

  await check(boot, "preserve-pipe", () => {
    const [reader, writer] = pipe(libc);
    try {
      return expectRefusal(() => keep.preserveFd(reader, 3n), {
        errno: "ENOENT",
        request: "preserve-fd",
        says: "cannot be preserved",
      });
    } finally {
      closeFd(reader);
      closeFd(writer);
    }
  });

  await check(boot, "preserve-tmpfs-file", () => {
    const path = "/tmp/abi-plain-file";
    Deno.writeTextFileSync(path, "plain tmpfs file");
    const fd = libc.symbols.open(cString(path), O_RDWR, 0);
    try {
      return expectRefusal(() => keep.preserveFd(fd, 3n), { errno: "ENOENT" });
    } finally {
      closeFd(fd);
    }
  });

  await check(boot, "preserve-unlinked-tmpfs-file", async () => {
    // memfd_luo takes any shmem file without links, not only memfd_create's.
    const path = "/tmp/abi-unlinked-file";
    Deno.writeTextFileSync(path, "unlinked tmpfs file");
    const fd = libc.symbols.open(cString(path), O_RDWR, 0);
    Deno.removeSync(path);
    const session = await device.createSession("abi-unlinked");
    try {
      session.preserveFd(fd, 1n);
      return { preserved: true };
    } finally {
      session.close();
      closeFd(fd);
    }
  });

  await check(boot, "preserve-bad-fd", () =>
    expectRefusal(() => keep.preserveFd(100_000, 4n), {
      errno: "EBADF",
      request: "preserve-fd",
    }));

  await check(boot, "write-after-preserve", () => {
    // Writing inside the preserved size works and is handed over; growing or
    // shrinking the file is refused (its size is fixed once preserved).
    seek(libc, secondFd, 0);
    writeAll(libc, secondFd, encoder.encode("S"));
    seek(libc, secondFd, 11);
    const appended = libc.symbols.write(secondFd, encoder.encode("!"), 1n) < 0
      ? libc.errnoName()
      : "ok";
    const truncated = libc.symbols.ftruncate(secondFd, 0n) < 0 ? libc.errnoName() : "ok";
    ensure(appended === "EPERM", `appending after preserve gave ${appended}`);
    ensure(truncated === "EPERM", `ftruncate after preserve gave ${truncated}`);
    return { overwrite: "ok", append: appended, ftruncate: truncated };
  });

  await check(
    boot,
    "retrieve-fd-on-outgoing",
    () => expectRefusal(() => keep.retrieveFd(1n), { errno: "EINVAL", request: "retrieve-fd" }),
  );

  await check(
    boot,
    "finish-on-outgoing",
    () => expectRefusal(() => keep.finish(), { errno: "EINVAL", request: "finish" }),
  );

  await check(
    boot,
    "retrieve-session-in-cold-boot",
    () =>
      expectRefusalAsync(() => device.retrieveSession("abi-keep"), {
        errno: "ENOENT",
        request: "retrieve-session",
        says: "handed over no session",
      }),
  );

  await check(boot, "closed-session-unpreserves", async () => {
    const closing = await device.createSession("abi-closed");
    const fd = memfdWith(libc, "abi-closed", encoder.encode("closed before the kexec"));
    closing.preserveFd(fd, 1n);
    closing.close();
    // The memfd is free again: another session may preserve it, and the name is free.
    const again = await device.createSession("abi-closed");
    again.preserveFd(fd, 1n);
    again.close();
    closeFd(fd);
    return { namesFreed: true, fileFreed: true };
  });

  await check(boot, "unclaimed-session", async () => {
    const unclaimed = await device.createSession("abi-unclaimed");
    sessions.push(unclaimed);
    const fd = memfdWith(libc, "abi-unclaimed", encoder.encode("nobody claims this"));
    unclaimed.preserveFd(fd, 7n);
    closeFd(fd);
    return { token: 7 };
  });

  await check(boot, "kho-out", async () => {
    const tree = await khoReport("out");
    ensure(tree.luo !== null, `no LUO header: ${JSON.stringify(tree)}`);
    ensure(/^luo-v\d+$/.test(tree.luo.compatible), `LUO compatible ${tree.luo.compatible}`);
    ensure(tree.luo.liveupdateNumber === 1, `liveupdate number ${tree.luo.liveupdateNumber}`);
    return tree;
  });

  await check(boot, "compat-running-vs-target", async () => {
    const metadata =
      (await readAbiMetadata(Deno, "/usr/lib/modules", Deno.osRelease()))?.compatible ?? null;
    ensure(metadata !== null, "no liveupdate-abi metadata in the guest");
    const running = runningHandoverAbi(
      await readKhoTree(kernelFs, "/sys/kernel/debug", "out"),
      metadata,
    );
    ensure(
      running.abi.luo === metadata.luo,
      `debugfs ${running.abi.luo}, metadata ${metadata.luo}`,
    );
    const verdict = compareHandoverAbi(running.abi, metadata);
    ensure(verdict.verdict === "compatible", verdict.message);
    const other = compareHandoverAbi(running.abi, { ...metadata, luo: "luo-v99" });
    ensure(other.verdict === "incompatible", other.message);
    return { running: running.abi, problems: running.problems, verdict: verdict.message };
  });

  await check(boot, "preflight-before-load", async () => {
    const running = checkCmdline(Deno.readTextFileSync("/proc/cmdline"), "running");
    const target = checkCmdline(nextCmdline(2), "target");
    const withoutLuo = checkCmdline(nextCmdline(2).replace("liveupdate=on", ""), "target");
    const loader = await checkKexecToolsLoader(Deno, "/etc/default/kexec");
    const slot = checkLoadedKernel(kernelFs, "/sys", false);
    ensure(
      running.ok && target.ok && loader.ok && slot.ok,
      JSON.stringify([running, target, loader, slot]),
    );
    ensure(!withoutLuo.ok, "a target without liveupdate=on passed");
    return { running, target, withoutLuo, loader, slot };
  });

  // The kernel holds its own references: the memfds can be closed now.
  for (const fd of fds) closeFd(fd);

  let loadMs = 0;
  const loaded = await check(boot, "kexec-file-load", () => {
    const started = performance.now();
    kexecFileLoad(libc, "/boot/bzImage", "/sys/firmware/initrd", nextCmdline(2));
    loadMs = performance.now() - started;
    const flag = Deno.readTextFileSync("/sys/kernel/kexec_loaded").trim();
    ensure(flag === "1", `/sys/kernel/kexec_loaded is ${flag}`);
    // A loaded kernel the agent did not load itself is refused; its own is accepted.
    const foreign = checkLoadedKernel(kernelFs, "/sys", false);
    const own = checkLoadedKernel(kernelFs, "/sys", true);
    ensure(!foreign.ok && own.ok, JSON.stringify([foreign, own]));
    return { loadMs: Math.round(loadMs), sessionsHeld: sessions.map((s) => s.name) };
  });
  if (!loaded) return;
  emit({
    type: "kexec",
    boot,
    uptime: Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]),
  });
  rebootIntoLoadedKernel(libc);
}

async function bootTwo(): Promise<void> {
  await check(boot, "kho-in", async () => {
    const tree = await khoReport("in");
    ensure(tree.kho !== null && /^kho-v\d+$/.test(tree.kho), `KHO compatible ${tree.kho}`);
    ensure(tree.kexec?.kexecCount === 1, `kexec count ${tree.kexec?.kexecCount}`);
    ensure(tree.kexec?.previousRelease === Deno.osRelease(), "previous release differs");
    const out = await khoReport("out");
    ensure(out.luo?.liveupdateNumber === 2, `next liveupdate number ${out.luo?.liveupdateNumber}`);
    return { in: tree, outNumber: out.luo?.liveupdateNumber };
  });

  await check(boot, "handover-verified", async () => {
    const metadata =
      (await readAbiMetadata(Deno, "/usr/lib/modules", Deno.osRelease()))?.compatible ?? null;
    ensure(metadata !== null, "no liveupdate-abi metadata in the guest");
    const expected = {
      release: Deno.osRelease(),
      running: metadata,
      target: metadata,
      liveupdateNumber: 1,
    };
    const incoming = await readKhoTree(kernelFs, "/sys/kernel/debug", "in");
    const outgoing = await readKhoTree(kernelFs, "/sys/kernel/debug", "out");
    const result = verifyHandover(expected, incoming, outgoing);
    ensure(result.ok, JSON.stringify(result.checks));
    ensure(
      result.checks.every((c) => c.ok === true),
      `unverifiable: ${JSON.stringify(result.checks)}`,
    );
    // A record from another liveupdate number does not match.
    const stale = verifyHandover({ ...expected, liveupdateNumber: 5 }, incoming, outgoing);
    ensure(!stale.ok, "a stale record verified");
    return result;
  });

  await check(boot, "status-json-after-kexec", async () => {
    const status = await statusJson();
    const kernel = status.kernel;
    ensure(kernel.backend === "mainline", JSON.stringify(kernel));
    ensure(status.handover.status === "present", JSON.stringify(status.handover));
    const incoming = kernel.sessions.incoming;
    ensure(
      incoming.previousRelease === Deno.osRelease() && incoming.kexecCount === 1,
      JSON.stringify(incoming),
    );
    ensure(
      kernel.sessions.outgoing.liveupdateNumber === 2,
      JSON.stringify(kernel.sessions.outgoing),
    );
    return { document: status };
  });

  await check(boot, "first-open-after-kexec", async () => {
    await device.use(() => undefined);
    return { opened: true };
  });

  let keep!: Session;
  await check(boot, "retrieve-session", async () => {
    keep = await device.retrieveSession("abi-keep");
    ensure(keep.direction === "incoming", "not incoming");
    ensure(closeOnExec(libc, keep.fd), "session fd is not close-on-exec");
    return { fd: keep.fd, name: keep.kernelName() };
  });

  await check(
    boot,
    "retrieve-session-twice",
    () =>
      expectRefusalAsync(() => device.retrieveSession("abi-keep"), {
        errno: "EINVAL",
        request: "retrieve-session",
        says: "already retrieved",
      }),
  );

  await check(
    boot,
    "retrieve-closed-session",
    () =>
      expectRefusalAsync(() => device.retrieveSession("abi-closed"), {
        errno: "ENOENT",
        request: "retrieve-session",
      }),
  );

  let bigFd = -1;
  await check(boot, "retrieve-fd-data-intact", async () => {
    bigFd = keep.retrieveFd(1n);
    const data = readAll(libc, bigFd, BIG_SIZE + 16);
    const expected = await sha256(pattern(BIG_SIZE, BIG_SEED));
    const actual = await sha256(data);
    ensure(data.length === BIG_SIZE, `size ${data.length}, not ${BIG_SIZE}`);
    ensure(actual === expected, "contents differ");
    const pos = fdinfo(bigFd, "pos");
    ensure(pos === "4096", `position ${pos}, not 4096`);
    const sealed = seals(libc, bigFd);
    ensure((sealed & SEAL.shrink) !== 0, `seals ${sealed} lack F_SEAL_SHRINK`);
    ensure(closeOnExec(libc, bigFd), "retrieved fd is not close-on-exec");
    return { size: data.length, sha256: actual, pos, seals: sealed };
  });

  await check(boot, "retrieve-fd-written-after-preserve", () => {
    const fd = keep.retrieveFd(2n);
    try {
      const text = decoder.decode(readAll(libc, fd, 64));
      ensure(text === "Second file", `contents ${JSON.stringify(text)}`);
      return { contents: text };
    } finally {
      closeFd(fd);
    }
  });

  await check(boot, "retrieve-fd-twice", () => {
    const again = keep.retrieveFd(1n);
    try {
      ensure(again !== bigFd, "same fd number");
      const same = fdinfo(again, "ino") === fdinfo(bigFd, "ino");
      ensure(same, "a second retrieve gave another file");
      return { sameFile: same };
    } finally {
      closeFd(again);
    }
  });

  await check(boot, "retrieve-fd-unknown-token", () =>
    expectRefusal(() => keep.retrieveFd(99n), {
      errno: "ENOENT",
      request: "retrieve-fd",
      says: "token 99",
    }));

  await check(boot, "preserve-on-incoming", () => {
    const fd = memfdWith(libc, "abi-late", encoder.encode("late"));
    try {
      return expectRefusal(() => keep.preserveFd(fd, 5n), {
        errno: "EINVAL",
        request: "preserve-fd",
        says: "incoming session",
      });
    } finally {
      closeFd(fd);
    }
  });

  await check(boot, "finish", () => {
    const started = performance.now();
    keep.finish();
    const finishMs = performance.now() - started;
    keep.finish();
    const after = expectRefusal(() => keep.retrieveFd(1n), { errno: "ENOENT" });
    return { finishMs, secondFinish: "ok", retrieveAfterFinish: after.errno };
  });

  await check(boot, "data-kept-after-finish", async () => {
    const data = readAll(libc, bigFd, BIG_SIZE);
    const actual = await sha256(data);
    ensure(actual === await sha256(pattern(BIG_SIZE, BIG_SEED)), "contents differ after finish");
    closeFd(bigFd);
    keep.close();
    return { sha256: actual };
  });

  await check(boot, "empty-session", async () => {
    const empty = await device.retrieveSession("abi-empty");
    empty.finish();
    empty.close();
    return { finished: true };
  });

  await check(boot, "unclaimed-session-finished-unretrieved", async () => {
    const session = await device.retrieveSession("abi-unclaimed");
    const started = performance.now();
    session.finish();
    const finishMs = performance.now() - started;
    const after = expectRefusal(() => session.retrieveFd(7n), { errno: "ENOENT" });
    session.close();
    return { finishMs, retrieveAfterFinish: after.errno };
  });

  await check(boot, "outgoing-name-reused", async () => {
    const session = await device.createSession("abi-keep");
    const name = session.kernelName();
    session.close();
    return { name };
  });
}

try {
  emit({ type: "boot", boot, uptime: Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]) });
  if (boot === 1) await bootOne();
  else await bootTwo();
  emit({ type: "done", boot });
} finally {
  libc.close();
}
