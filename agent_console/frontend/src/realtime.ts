// The Socket.IO connection to the hub: one Manager (one WebSocket) carrying `/agent` and, for
// supervisors, `/supervisor`. socket.io-client reconnects by itself; the app re-syncs over HTTP
// when the hub says `hello` again, and re-sends anything the hub never acknowledged.
import { Manager, type Socket } from 'socket.io-client';
import type { Ack } from './types';

/** How long to wait for an ack before treating the emit as lost (it is then re-sent). */
export const ACK_TIMEOUT_MS = 10_000;

export function openManager(): Manager {
  return new Manager(window.location.origin, {
    path: '/socket.io/',
    // WebSocket only: no long-polling fallback, so no sticky-session needs across hub processes
    // beyond the one upgrade request, and a blip is a clean close the client notices at once.
    transports: ['websocket'],
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0.3,
    timeout: 10_000,
  });
}

export function openSocket(manager: Manager, namespace: string, token: string): Socket {
  return manager.socket(namespace, { auth: { token } });
}

export class AckError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Emit an event and resolve with the ack's body; reject with AckError when the hub refuses
 * (`{"error": {...}}`) or with code `timeout` when no ack came (lost connection included).
 */
export function call<T extends object = Record<string, never>>(
  socket: Socket,
  event: string,
  payload: object,
  timeoutMs = ACK_TIMEOUT_MS,
): Promise<T> {
  return new Promise((resolve, reject) => {
    if (!socket.connected) {
      reject(new AckError('network', 'not connected'));
      return;
    }
    socket.timeout(timeoutMs).emit(event, payload, (err: Error | null, ack: Ack<T>) => {
      if (err) reject(new AckError('timeout', err.message));
      else if (ack && 'error' in ack && ack.error) reject(new AckError(ack.error.code, ack.error.message));
      else resolve(ack as T);
    });
  });
}
