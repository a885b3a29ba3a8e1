// The supervisor's live view: the `/supervisor` namespace's wallboard and SLA alerts, plus the
// list of live conversations (read over HTTP) that a supervisor may watch or take over.
import { signal } from '@preact/signals';
import type { Manager, Socket } from 'socket.io-client';
import type { Api } from './api';
import { call, openSocket } from './realtime';
import type { ConversationSummary, SlaBreach, Wallboard } from './types';
import type { Workspace } from './workspace';

const CONVERSATIONS_REFRESH_MS = 5_000;

export class Supervision {
  readonly wallboard = signal<Wallboard | null>(null);
  readonly breaches = signal<readonly SlaBreach[]>([]);
  readonly live = signal<readonly ConversationSummary[]>([]);
  readonly connected = signal(false);

  private readonly socket: Socket;
  private refresh: number | null = null;

  constructor(
    private readonly api: Api,
    private readonly workspace: Workspace,
    manager: Manager,
    token: string,
  ) {
    this.socket = openSocket(manager, '/supervisor', token);
    this.socket.on('connect', () => (this.connected.value = true));
    this.socket.on('disconnect', () => (this.connected.value = false));
    this.socket.on('wallboard', (board: Wallboard) => (this.wallboard.value = board));
    this.socket.on('sla_breach', (breach: SlaBreach) => {
      this.breaches.value = [
        ...this.breaches.value.filter((b) => b.conversation_id !== breach.conversation_id),
        breach,
      ];
    });
  }

  /** Poll the conversation list while the wallboard is on screen. */
  start(): void {
    if (this.refresh !== null) return;
    void this.loadLive();
    this.refresh = window.setInterval(() => void this.loadLive(), CONVERSATIONS_REFRESH_MS);
  }

  stop(): void {
    if (this.refresh !== null) window.clearInterval(this.refresh);
    this.refresh = null;
  }

  close(): void {
    this.stop();
    this.socket.disconnect();
  }

  async loadLive(): Promise<void> {
    try {
      const [queued, assigned] = await Promise.all([
        this.api.conversations('queued'),
        this.api.conversations('assigned'),
      ]);
      this.live.value = [...queued, ...assigned];
      // An alert is about someone still waiting: once they are accepted it has done its job.
      const waiting = new Set(queued.map((c) => c.id));
      this.breaches.value = this.breaches.value.filter((b) => waiting.has(b.conversation_id));
    } catch (error) {
      this.workspace.fail(error);
    }
  }

  async takeOver(conversationId: number): Promise<boolean> {
    try {
      await call(this.socket, 'take_over', { conversation_id: conversationId });
      this.dismiss(conversationId);
      // The hub also says `assigned` on /agent; loading here makes the switch immediate.
      await this.workspace.open(conversationId, false);
      void this.loadLive();
      return true;
    } catch (error) {
      this.workspace.fail(error);
      return false;
    }
  }

  dismiss(conversationId: number): void {
    this.breaches.value = this.breaches.value.filter((b) => b.conversation_id !== conversationId);
  }
}
