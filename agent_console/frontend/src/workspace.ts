// The agent's live workspace: conversations, messages, offers and presence, kept in signals
// that the components read. All traffic with the hub for one agent goes through here.
import { batch, computed, signal } from '@preact/signals';
import type { Manager, Socket } from 'socket.io-client';
import { Api, ApiError } from './api';
import { errorText, label, t } from './i18n';
import { beep, notifyDesktop } from './notify';
import { AckError, call, openSocket } from './realtime';
import type {
  CannedReply,
  ConversationDetail,
  ConversationSummary,
  Customer360,
  KbResult,
  Message,
  Offer,
  Presence,
  Resolution,
  RevealField,
  ScreenPop,
  Staff,
  SuggestedMatch,
} from './types';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline';

/** A reply or note typed by the agent that the hub has not acknowledged yet. */
export interface PendingSend {
  clientId: string;
  conversationId: number;
  text: string;
  internal: boolean;
  createdAt: string;
  failed: string | null; // the hub's refusal, shown with a retry button
  inFlight: boolean;
}

export interface Conversation {
  summary: ConversationSummary;
  detail: ConversationDetail | null;
  messages: Message[];
  customerTyping: boolean;
  watching: boolean; // a supervisor following someone else's conversation (read only)
  closedReason: string | null;
}

/** A merge made from a conversation's customer 360, kept so that it can be undone there. */
export interface MadeMerge {
  mergeId: number;
  otherName: string;
}

export type Loadable<T> =
  { state: 'loading' } | { state: 'ok'; value: T } | { state: 'error'; message: string };

export interface Notice {
  id: number;
  kind: 'info' | 'error';
  text: string;
}

const HEARTBEAT_MS = 15_000;
const TYPING_REPEAT_MS = 3_000;
const TYPING_IDLE_MS = 3_000;
// If the hub never says the customer stopped typing (they closed the tab), stop showing it.
const TYPING_STALE_MS = 20_000;

export class Workspace {
  readonly connection = signal<ConnectionState>('connecting');
  readonly presence = signal<Presence>('offline');
  readonly conversations = signal<ReadonlyMap<number, Conversation>>(new Map());
  readonly pending = signal<readonly PendingSend[]>([]);
  readonly offers = signal<readonly Offer[]>([]);
  readonly activeId = signal<number | null>(null);
  readonly notices = signal<readonly Notice[]>([]);
  readonly customer360 = signal<ReadonlyMap<number, Loadable<Customer360>>>(new Map());
  readonly revealed = signal<ReadonlyMap<string, string>>(new Map());
  readonly merges = signal<ReadonlyMap<number, MadeMerge>>(new Map()); // by conversation id
  readonly suggestions = signal<{ conversationId: number; results: KbResult[] } | null>(null);
  readonly canned = signal<ReadonlyMap<string, CannedReply[]>>(new Map());

  readonly ordered = computed(() =>
    [...this.conversations.value.values()].sort(
      (a, b) =>
        Date.parse(a.summary.accepted_at ?? a.summary.opened_at) -
        Date.parse(b.summary.accepted_at ?? b.summary.opened_at),
    ),
  );
  readonly active = computed(() =>
    this.activeId.value === null ? null : (this.conversations.value.get(this.activeId.value) ?? null),
  );
  readonly totalUnread = computed(() =>
    [...this.conversations.value.values()].reduce((sum, c) => sum + c.summary.unread, 0),
  );

  private readonly socket: Socket;
  private readonly timers: number[] = [];
  private readonly typingTimers = new Map<number, number>();
  private typingOut: { conversationId: number; sentAt: number; idle: number } | null = null;
  private noticeSeq = 0;
  private hellos = 0;

  constructor(
    readonly staff: Staff,
    readonly api: Api,
    manager: Manager,
    token: string,
    private readonly onUnauthenticated: () => void,
  ) {
    this.socket = openSocket(manager, '/agent', token);
    this.listen();
    this.timers.push(
      window.setInterval(() => {
        if (this.socket.connected) this.socket.emit('heartbeat', {});
      }, HEARTBEAT_MS),
      window.setInterval(() => this.dropExpiredOffers(), 1000),
    );
  }

  close(): void {
    this.timers.forEach((id) => window.clearInterval(id));
    this.socket.disconnect();
  }

  // -- connection -----------------------------------------------------------------------------

  private listen(): void {
    const s = this.socket;
    s.on('connect', () => {
      this.connection.value = 'connected';
      s.emit('heartbeat', {});
      this.flushPending();
    });
    s.on('disconnect', () => {
      this.connection.value = s.active ? 'reconnecting' : 'offline';
      this.pending.value = this.pending.value.map((p) => ({ ...p, inFlight: false }));
    });
    s.on('connect_error', () => {
      if (s.active) {
        this.connection.value = this.hellos ? 'reconnecting' : 'connecting';
        return;
      }
      // The hub refused this namespace (not a network error): is the session still good?
      this.connection.value = 'offline';
      this.api.me().then(
        () => window.setTimeout(() => s.connect(), 3000),
        () => undefined, // Api has already sent the agent back to the login on a 401
      );
    });
    s.on('hello', (hello: { presence: Presence; assigned: ConversationSummary[]; offers: Offer[] }) =>
      this.onHello(hello),
    );
    s.on('offer', (offer: Offer) => this.onOffer(offer));
    s.on('offer_withdrawn', ({ conversation_id }: { conversation_id: number }) => {
      this.offers.value = this.offers.value.filter((o) => o.conversation.id !== conversation_id);
    });
    s.on('assigned', ({ conversation }: { conversation: ConversationSummary }) =>
      this.onAssigned(conversation),
    );
    s.on('screen_pop', (pop: ScreenPop) => this.onScreenPop(pop));
    s.on('unassigned', ({ conversation_id, reason }: { conversation_id: number; reason: string }) =>
      this.onUnassigned(conversation_id, reason),
    );
    s.on('message', (message: Message) => this.onMessage(message));
    s.on(
      'message_status',
      (status: Pick<Message, 'id' | 'conversation_id' | 'delivery_status' | 'delivery_error'>) =>
        this.updateConversation(status.conversation_id, (c) => ({
          ...c,
          messages: c.messages.map((m) =>
            m.id === status.id
              ? { ...m, delivery_status: status.delivery_status, delivery_error: status.delivery_error }
              : m,
          ),
        })),
    );
    s.on('typing', (event: { conversation_id: number; author: string; typing: boolean }) =>
      this.onCustomerTyping(event.conversation_id, event.typing),
    );
    s.on('conversation_closed', ({ conversation_id, reason }: { conversation_id: number; reason: string }) =>
      this.updateConversation(conversation_id, (c) => ({
        ...c,
        closedReason: reason,
        customerTyping: false,
        summary: { ...c.summary, status: 'closed' },
      })),
    );
  }

  /**
   * The hub greets every (re)connection with what this agent holds. Conversations it no longer
   * lists were taken away while we were gone; the rest are re-read over HTTP so that messages
   * that arrived during a blip are not missed.
   */
  private onHello(hello: { presence: Presence; assigned: ConversationSummary[]; offers: Offer[] }): void {
    this.hellos += 1;
    const held = new Set(hello.assigned.map((c) => c.id));
    batch(() => {
      this.presence.value = hello.presence;
      this.offers.value = hello.offers;
      const next = new Map<number, Conversation>();
      for (const [id, conversation] of this.conversations.value) {
        if (held.has(id) || conversation.watching || conversation.closedReason) next.set(id, conversation);
      }
      for (const summary of hello.assigned) {
        const known = next.get(summary.id);
        next.set(summary.id, known ? { ...known, summary } : blankConversation(summary));
      }
      this.conversations.value = next;
      if (this.activeId.value !== null && !next.has(this.activeId.value)) this.activeId.value = null;
      if (this.activeId.value === null && hello.assigned.length) this.activate(hello.assigned[0]!.id);
    });
    for (const [id, conversation] of this.conversations.value) {
      // Rooms belong to a connection: watching must be asked for again after a reconnect.
      if (conversation.watching) this.socket.emit('join', { conversation_id: id });
      void this.loadDetail(id);
    }
  }

  private onOffer(offer: Offer): void {
    this.offers.value = [
      ...this.offers.value.filter((o) => o.conversation.id !== offer.conversation.id),
      offer,
    ];
    beep();
    const name = offer.conversation.customer.display_name ?? t().anonymous;
    notifyDesktop(
      t().notificationTitle(name),
      offer.conversation.last_message?.text ?? '',
      `offer-${offer.conversation.id}`,
    );
  }

  private dropExpiredOffers(): void {
    // A grace second: the hub withdraws the offer itself; this only tidies up after a blip.
    const cutoff = Date.now() - 1000;
    const live = this.offers.value.filter((o) => Date.parse(o.expires_at) > cutoff);
    if (live.length !== this.offers.value.length) this.offers.value = live;
  }

  private onAssigned(summary: ConversationSummary): void {
    const known = this.conversations.value.get(summary.id);
    this.setConversation(
      summary.id,
      known ? { ...known, summary, watching: false } : blankConversation(summary),
    );
    this.offers.value = this.offers.value.filter((o) => o.conversation.id !== summary.id);
    if (!known?.detail) void this.loadDetail(summary.id);
    if (this.activeId.value === null) this.activate(summary.id);
  }

  /** A call is ringing through to this agent: bring its conversation and customer 360 up now. */
  private onScreenPop(pop: ScreenPop): void {
    this.onAssigned(pop.conversation);
    this.activate(pop.conversation_id);
    const name = pop.conversation.customer.display_name ?? t().anonymous;
    const text = t().callConnecting(name, pop.caller ?? '');
    this.notify('info', text);
    notifyDesktop(text, pop.handoff?.summary ?? '', `call-${pop.conversation_id}`);
  }

  private onUnassigned(conversationId: number, reason: string): void {
    const gone = this.conversations.value.get(conversationId);
    if (!gone) return;
    this.remove(conversationId);
    const name = gone.summary.customer.display_name ?? t().anonymous;
    this.notify('info', `${name} · #${conversationId}: ${label(t().events, reason)}`);
  }

  private onMessage(message: Message): void {
    const conversation = this.conversations.value.get(message.conversation_id);
    if (message.client_id) {
      this.pending.value = this.pending.value.filter((p) => p.clientId !== message.client_id);
    }
    if (!conversation) return;
    const isNew = !conversation.messages.some((m) => m.id === message.id);
    const fromCustomer = message.author === 'customer';
    const seen = this.activeId.value === message.conversation_id && document.visibilityState === 'visible';
    this.setConversation(message.conversation_id, {
      ...conversation,
      messages: upsertMessage(conversation.messages, message),
      customerTyping: fromCustomer ? false : conversation.customerTyping,
      summary: {
        ...conversation.summary,
        last_message: { author: message.author, text: message.text, created_at: message.created_at },
        unread: conversation.summary.unread + (isNew && fromCustomer && !seen ? 1 : 0),
      },
    });
    if (isNew && fromCustomer) {
      if (seen) this.markRead(message.conversation_id);
      if (this.activeId.value === message.conversation_id) void this.loadSuggestions(message.conversation_id);
      if (!seen) {
        notifyDesktop(
          conversation.summary.customer.display_name ?? t().anonymous,
          message.text,
          `msg-${message.conversation_id}`,
        );
      }
    }
  }

  private onCustomerTyping(conversationId: number, typing: boolean): void {
    window.clearTimeout(this.typingTimers.get(conversationId));
    this.updateConversation(conversationId, (c) => ({ ...c, customerTyping: typing }));
    if (typing) {
      this.typingTimers.set(
        conversationId,
        window.setTimeout(() => this.onCustomerTyping(conversationId, false), TYPING_STALE_MS),
      );
    }
  }

  // -- what the agent does --------------------------------------------------------------------

  async setPresence(status: Presence): Promise<void> {
    const before = this.presence.value;
    this.presence.value = status;
    try {
      await call(this.socket, 'presence', { status });
    } catch (error) {
      this.presence.value = before;
      this.fail(error);
    }
  }

  async accept(conversationId: number): Promise<void> {
    this.offers.value = this.offers.value.filter((o) => o.conversation.id !== conversationId);
    try {
      const ack = await call<{ conversation: ConversationDetail }>(this.socket, 'accept', {
        conversation_id: conversationId,
      });
      const known = this.conversations.value.get(conversationId);
      this.setConversation(conversationId, {
        ...(known ?? blankConversation(ack.conversation)),
        summary: summaryOf(ack.conversation),
        detail: ack.conversation,
        messages: ack.conversation.messages,
        watching: false,
      });
      this.activate(conversationId);
      // A customer message that crossed the accept on the wire is in neither the ack nor an
      // event for a conversation we did not hold yet: read the record once more.
      void this.loadDetail(conversationId);
    } catch (error) {
      this.fail(error);
    }
  }

  async decline(conversationId: number): Promise<void> {
    this.offers.value = this.offers.value.filter((o) => o.conversation.id !== conversationId);
    try {
      await call(this.socket, 'decline', { conversation_id: conversationId });
    } catch (error) {
      this.fail(error);
    }
  }

  activate(conversationId: number | null): void {
    if (this.typingOut && this.typingOut.conversationId !== conversationId) this.stopTyping();
    this.activeId.value = conversationId;
    if (conversationId === null) return;
    this.markRead(conversationId);
    if (!this.customer360.value.has(conversationId)) void this.loadCustomer360(conversationId);
    void this.loadSuggestions(conversationId);
  }

  /** Move the selection up (-1) or down (+1) the conversation list. */
  step(delta: number): void {
    const list = this.ordered.value;
    if (!list.length) return;
    const at = list.findIndex((c) => c.summary.id === this.activeId.value);
    const next = at < 0 ? 0 : (at + delta + list.length) % list.length;
    this.activate(list[next]!.summary.id);
  }

  /** Send a reply (or an internal note); it shows at once as pending and is retried until acked. */
  send(conversationId: number, text: string, internal: boolean): void {
    const body = text.trim();
    if (!body) return;
    if (!internal) this.stopTyping();
    const item: PendingSend = {
      clientId: crypto.randomUUID(),
      conversationId,
      text: body,
      internal,
      createdAt: new Date().toISOString(),
      failed: null,
      inFlight: false,
    };
    this.pending.value = [...this.pending.value, item];
    this.emitPending(item);
  }

  retry(clientId: string): void {
    const item = this.pending.value.find((p) => p.clientId === clientId);
    if (!item) return;
    this.patchPending(clientId, { failed: null });
    this.emitPending({ ...item, failed: null });
  }

  discard(clientId: string): void {
    this.pending.value = this.pending.value.filter((p) => p.clientId !== clientId);
  }

  private flushPending(): void {
    for (const item of this.pending.value) if (!item.inFlight && !item.failed) this.emitPending(item);
  }

  private emitPending(item: PendingSend): void {
    if (!this.socket.connected) return; // flushed on the next connect
    this.patchPending(item.clientId, { inFlight: true });
    call<{ message: Message }>(this.socket, item.internal ? 'note' : 'send', {
      conversation_id: item.conversationId,
      text: item.text,
      client_id: item.clientId, // the same id on every attempt: the hub stores it once
    }).then(
      (ack) => this.onMessage({ ...ack.message, client_id: item.clientId }),
      (error: unknown) => {
        if (error instanceof AckError && error.code !== 'timeout' && error.code !== 'network') {
          this.patchPending(item.clientId, { inFlight: false, failed: errorText(error.code, error.message) });
          return;
        }
        // Lost on the way: resend now if the socket still looks up, else on the next connect.
        this.patchPending(item.clientId, { inFlight: false });
        if (this.socket.connected) this.emitPending(item);
      },
    );
  }

  private patchPending(clientId: string, changes: Partial<PendingSend>): void {
    this.pending.value = this.pending.value.map((p) => (p.clientId === clientId ? { ...p, ...changes } : p));
  }

  /** Called on every keystroke in the reply box; tells the customer, without flooding the hub. */
  composing(conversationId: number): void {
    const nowMs = Date.now();
    const current = this.typingOut;
    if (current) window.clearTimeout(current.idle);
    const idle = window.setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
    if (!current || current.conversationId !== conversationId || nowMs - current.sentAt > TYPING_REPEAT_MS) {
      if (current && current.conversationId !== conversationId)
        this.emitTyping(current.conversationId, false);
      this.emitTyping(conversationId, true);
      this.typingOut = { conversationId, sentAt: nowMs, idle };
    } else {
      this.typingOut = { ...current, idle };
    }
  }

  stopTyping(): void {
    if (!this.typingOut) return;
    window.clearTimeout(this.typingOut.idle);
    this.emitTyping(this.typingOut.conversationId, false);
    this.typingOut = null;
  }

  private emitTyping(conversationId: number, typing: boolean): void {
    if (this.socket.connected) this.socket.emit('typing', { conversation_id: conversationId, typing });
  }

  private markRead(conversationId: number): void {
    const conversation = this.conversations.value.get(conversationId);
    if (!conversation) return;
    const last = conversation.messages[conversation.messages.length - 1];
    if (conversation.summary.unread) {
      this.setConversation(conversationId, {
        ...conversation,
        summary: { ...conversation.summary, unread: 0 },
      });
    }
    if (last && this.socket.connected && !conversation.watching) {
      this.socket.emit('read', { conversation_id: conversationId, message_id: last.id });
    }
  }

  async transfer(
    conversationId: number,
    target: { toAgentId: number } | { toSkill: string },
    note: string,
  ): Promise<boolean> {
    const payload: Record<string, unknown> = { conversation_id: conversationId, note };
    if ('toAgentId' in target) payload.to_agent_id = target.toAgentId;
    else payload.to_skill = target.toSkill;
    try {
      await call(this.socket, 'transfer', payload);
      this.remove(conversationId);
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  async wrapUp(
    conversationId: number,
    resolution: Resolution,
    topic: string,
    note: string,
  ): Promise<boolean> {
    const payload: Record<string, unknown> = { conversation_id: conversationId, resolution, topic };
    if (note.trim()) payload.note = note.trim();
    try {
      await call(this.socket, 'wrap_up', payload);
      this.remove(conversationId);
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  /** A supervisor follows a conversation live without taking it. */
  async watch(conversationId: number): Promise<void> {
    try {
      await call(this.socket, 'join', { conversation_id: conversationId });
      await this.open(conversationId, true);
    } catch (error) {
      this.fail(error);
    }
  }

  /** Show a conversation read over HTTP (one taken over, or one being watched) and select it. */
  async open(conversationId: number, watching: boolean): Promise<void> {
    const detail = await this.api.conversation(conversationId);
    const known = this.conversations.value.get(conversationId);
    this.setConversation(conversationId, {
      ...(known ?? blankConversation(detail)),
      summary: summaryOf(detail),
      detail,
      messages: mergeMessages(detail.messages, known?.messages ?? []),
      watching: watching && !(known && !known.watching),
    });
    this.activate(conversationId);
  }

  /** Forget a conversation that ended (wrapped up, transferred, closed by the customer). */
  remove(conversationId: number): void {
    if (this.conversations.value.get(conversationId)?.watching && this.socket.connected) {
      this.socket.emit('leave', { conversation_id: conversationId });
    }
    const next = new Map(this.conversations.value);
    next.delete(conversationId);
    this.pending.value = this.pending.value.filter((p) => p.conversationId !== conversationId);
    batch(() => {
      this.conversations.value = next;
      if (this.activeId.value === conversationId) {
        const first = this.ordered.value[0];
        this.activate(first ? first.summary.id : null);
      }
    });
  }

  // -- reading context over HTTP --------------------------------------------------------------

  async loadDetail(conversationId: number): Promise<void> {
    try {
      const detail = await this.api.conversation(conversationId);
      this.updateConversation(conversationId, (c) => ({
        ...c,
        detail,
        summary: { ...summaryOf(detail), unread: c.summary.unread },
        messages: mergeMessages(detail.messages, c.messages),
      }));
      // Replies acked while we were away arrive in the detail; they are no longer pending.
      const delivered = new Set(detail.messages.map((m) => m.client_id).filter(Boolean));
      this.pending.value = this.pending.value.filter((p) => !delivered.has(p.clientId));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) this.remove(conversationId);
      else this.fail(error);
    }
  }

  async loadCustomer360(conversationId: number): Promise<void> {
    const conversation = this.conversations.value.get(conversationId);
    if (!conversation) return;
    this.set360(conversationId, { state: 'loading' });
    try {
      const value = await this.api.customerContext(
        conversation.summary.customer.id,
        conversationId,
        `serving conversation #${conversationId}`,
      );
      this.set360(conversationId, { state: 'ok', value });
    } catch (error) {
      this.set360(conversationId, { state: 'error', message: messageOf(error) });
    }
  }

  async reveal(
    customerId: number,
    field: RevealField,
    reason: string,
    holdingId?: number | string,
  ): Promise<void> {
    const value = await this.api.reveal(customerId, field, reason, holdingId);
    const next = new Map(this.revealed.value);
    next.set(revealKey(customerId, field, holdingId), value);
    this.revealed.value = next;
  }

  /**
   * Merge a suggested match into this conversation's customer (audited; the hub picks the
   * survivor, so the conversation may now belong to the other record). Throws on refusal.
   */
  async merge(conversationId: number, match: SuggestedMatch, reason: string): Promise<void> {
    const conversation = this.conversations.value.get(conversationId);
    if (!conversation) return;
    const result = await this.api.merge(conversation.summary.customer.id, match.customer_id, reason);
    const otherName = match.display_name ?? `#${match.customer_id}`;
    this.merges.value = new Map(this.merges.value).set(conversationId, {
      mergeId: result.merge_id,
      otherName,
    });
    this.notify('info', t().merged(otherName));
    await this.loadDetail(conversationId);
    await this.loadCustomer360(conversationId);
  }

  /** Undo the merge made from this conversation (audited). Throws on refusal. */
  async undoMerge(conversationId: number, reason: string): Promise<void> {
    const made = this.merges.value.get(conversationId);
    if (!made) return;
    await this.api.undoMerge(made.mergeId, reason);
    const next = new Map(this.merges.value);
    next.delete(conversationId);
    this.merges.value = next;
    this.notify('info', t().mergeUndone(made.otherName));
    await this.loadDetail(conversationId);
    await this.loadCustomer360(conversationId);
  }

  async loadSuggestions(conversationId: number): Promise<void> {
    try {
      const results = await this.api.suggest(conversationId);
      if (this.activeId.value === conversationId) this.suggestions.value = { conversationId, results };
    } catch {
      // Suggestions are a help, not the job: a failure leaves the last ones in place.
    }
  }

  async loadCanned(language: string): Promise<void> {
    if (this.canned.value.has(language)) return;
    try {
      const replies = await this.api.cannedReplies(language);
      this.canned.value = new Map(this.canned.value).set(language, replies);
    } catch (error) {
      this.fail(error);
    }
  }

  // -- helpers ----------------------------------------------------------------------------------

  notify(kind: Notice['kind'], text: string): void {
    const notice = { id: ++this.noticeSeq, kind, text };
    this.notices.value = [...this.notices.value.slice(-3), notice];
    window.setTimeout(() => this.dismiss(notice.id), kind === 'error' ? 10_000 : 6_000);
  }

  dismiss(id: number): void {
    this.notices.value = this.notices.value.filter((n) => n.id !== id);
  }

  fail(error: unknown): void {
    if (error instanceof ApiError && error.status === 401) {
      this.onUnauthenticated();
      return;
    }
    this.notify('error', messageOf(error));
  }

  private set360(conversationId: number, value: Loadable<Customer360>): void {
    this.customer360.value = new Map(this.customer360.value).set(conversationId, value);
  }

  private setConversation(id: number, conversation: Conversation): void {
    this.conversations.value = new Map(this.conversations.value).set(id, conversation);
  }

  private updateConversation(id: number, change: (c: Conversation) => Conversation): void {
    const conversation = this.conversations.value.get(id);
    if (conversation) this.setConversation(id, change(conversation));
  }
}

export function revealKey(customerId: number, field: RevealField, holdingId?: number | string): string {
  return `${customerId}:${field}:${holdingId ?? ''}`;
}

export function messageOf(error: unknown): string {
  if (error instanceof ApiError || error instanceof AckError) return errorText(error.code, error.message);
  return t().genericError;
}

function blankConversation(summary: ConversationSummary): Conversation {
  return {
    summary: summaryOf(summary),
    detail: null,
    messages: [],
    customerTyping: false,
    watching: false,
    closedReason: null,
  };
}

/** A summary as the list keeps it; `unread` may be missing from a detail. */
function summaryOf(conversation: ConversationSummary): ConversationSummary {
  return { ...conversation, unread: conversation.unread ?? 0 };
}

function upsertMessage(messages: readonly Message[], message: Message): Message[] {
  const at = messages.findIndex((m) => m.id === message.id);
  if (at >= 0) return messages.map((m, i) => (i === at ? { ...m, ...message } : m));
  return [...messages, message].sort(byTime);
}

/** The hub's list is the record; keep local ones it does not have yet (arrived since it read). */
function mergeMessages(fromHub: readonly Message[], local: readonly Message[]): Message[] {
  const ids = new Set(fromHub.map((m) => m.id));
  return [...fromHub, ...local.filter((m) => !ids.has(m.id))].sort(byTime);
}

function byTime(a: Message, b: Message): number {
  return Date.parse(a.created_at) - Date.parse(b.created_at) || a.id - b.id;
}
