/**
 * The session broker for mainline kernels: clients preserve their memfds into
 * sessions the agent creates, holds across the kexec and hands back.
 *
 * @module
 */

export * from "./broker.ts";
export * from "./client.ts";
export * from "./notify.ts";
export * from "./protocol.ts";
export * from "./record.ts";
export * from "./unix_socket.ts";
