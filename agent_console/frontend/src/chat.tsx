// The chat pane: header with actions, the transcript (bot turns, handoff card, notes, timeline)
// and the composer. Every piece of chat text is rendered through JSX text binding — a text
// node — never as HTML.
import { useComputed, useSignal } from '@preact/signals';
import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef } from 'preact/hooks';
import { SegmentBadge } from './conversations';
import { clock } from './format';
import { label, lang, t } from './i18n';
import type { CannedReply, ConversationEvent, HandoffContext, Message, Verification } from './types';
import { useConsole } from './ui';
import type { Conversation, PendingSend } from './workspace';

// Timeline events worth a line in the transcript; the others (offers, declines) are noise here.
const SHOWN_EVENTS = new Set([
  'accepted',
  'transferred',
  'taken_over',
  'requeued',
  'overflowed',
  'sla_breach',
]);

export function ChatPane() {
  const { workspace } = useConsole();
  const conversation = workspace.active.value;
  if (!conversation) {
    return (
      <section class="chat chat--empty" aria-label={t().transcript}>
        <p class="empty">{t().selectConversation}</p>
      </section>
    );
  }
  return (
    <section class="chat" aria-labelledby="chat-title">
      <ChatHeader conversation={conversation} />
      <Transcript conversation={conversation} />
      <SuggestionStrip conversationId={conversation.summary.id} />
      <Composer conversation={conversation} />
    </section>
  );
}

function ChatHeader({ conversation }: { conversation: Conversation }) {
  const { ui, supervision } = useConsole();
  const { summary, detail } = conversation;
  const actionable = !conversation.watching && summary.status === 'assigned';
  return (
    <header class="chat__head">
      <div class="chat__who">
        <h2 id="chat-title">{summary.customer.display_name ?? t().anonymous}</h2>
        {summary.customer.segment && <SegmentBadge segment={summary.customer.segment} />}
        <VerifiedTag verification={detail?.verification ?? null} verified={summary.customer.verified} />
        <span class="muted">
          #{summary.id} · {label(t().channels, summary.channel)} · {label(t().skills, summary.skill)}
          {summary.topic ? ` · ${summary.topic}` : ''}
        </span>
      </div>
      <div class="chat__actions">
        {conversation.watching && supervision && (
          <button type="button" class="btn btn--small" onClick={() => void supervision.takeOver(summary.id)}>
            {t().takeOver}
          </button>
        )}
        <button
          type="button"
          class="btn btn--small"
          disabled={!actionable}
          aria-keyshortcuts="Alt+T"
          onClick={() => (ui.dialog.value = 'transfer')}
        >
          {t().transfer} <kbd>Alt+T</kbd>
        </button>
        <button
          type="button"
          class="btn btn--small btn--primary"
          disabled={!actionable}
          aria-keyshortcuts="Alt+W"
          onClick={() => (ui.dialog.value = 'wrapUp')}
        >
          {t().wrapUp} <kbd>Alt+W</kbd>
        </button>
      </div>
    </header>
  );
}

function VerifiedTag({ verification, verified }: { verification: Verification | null; verified: boolean }) {
  const ok = verification?.verified ?? verified;
  return <span class={`tag ${ok ? 'tag--ok' : 'tag--warn'}`}>{ok ? t().verified : t().unverified}</span>;
}

type Item =
  | { kind: 'message'; at: string; message: Message }
  | { kind: 'pending'; at: string; pending: PendingSend }
  | { kind: 'event'; at: string; event: ConversationEvent }
  | { kind: 'handoff'; at: string; handoff: HandoffContext };

function Transcript({ conversation }: { conversation: Conversation }) {
  const { workspace } = useConsole();
  const log = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const id = conversation.summary.id;
  const pending = workspace.pending.value.filter((p) => p.conversationId === id);
  const items = transcriptItems(conversation, pending);

  // Follow new lines, unless the agent has scrolled up to read.
  useLayoutEffect(() => {
    if (log.current && stick.current) log.current.scrollTop = log.current.scrollHeight;
  }, [items.length, id, conversation.customerTyping]);
  useEffect(() => {
    stick.current = true;
  }, [id]);

  return (
    <div class="transcript">
      <div
        ref={log}
        class="transcript__scroll"
        role="log"
        aria-label={t().transcript}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        <ol class="transcript__items">
          {items.map((item) => (
            <TranscriptItem key={itemKey(item)} item={item} conversation={conversation} />
          ))}
        </ol>
      </div>
      {conversation.customerTyping && (
        <p class="typing" role="status">
          {t().customerTyping}
        </p>
      )}
      {conversation.closedReason !== null && (
        <p class="closed-banner" role="status">
          {t().closedConversation}: {conversation.closedReason}
          <button type="button" class="btn btn--small" onClick={() => workspace.remove(id)}>
            {t().close}
          </button>
        </p>
      )}
    </div>
  );
}

function transcriptItems(conversation: Conversation, pending: PendingSend[]): Item[] {
  const items: Item[] = conversation.messages.map((message) => ({
    kind: 'message',
    at: message.created_at,
    message,
  }));
  for (const event of conversation.detail?.events ?? []) {
    if (SHOWN_EVENTS.has(event.kind)) items.push({ kind: 'event', at: event.at, event });
  }
  const handoff = conversation.detail?.handoff;
  if (handoff) {
    // The card goes where the bot let go, so the turns before it read as its evidence.
    const at =
      conversation.summary.handoff_at ??
      conversation.messages[conversation.messages.length - 1]?.created_at ??
      '';
    items.push({ kind: 'handoff', at, handoff });
  }
  items.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || order(a) - order(b));
  for (const p of pending) items.push({ kind: 'pending', at: p.createdAt, pending: p });
  return items;
}

/** At the same instant: messages, then the handoff card, then timeline lines. */
function order(item: Item): number {
  return item.kind === 'message' ? 0 : item.kind === 'handoff' ? 1 : 2;
}

function itemKey(item: Item): string {
  switch (item.kind) {
    case 'message':
      return `m${item.message.id}`;
    case 'pending':
      return `p${item.pending.clientId}`;
    case 'event':
      return `e${item.event.id ?? item.at + item.event.kind}`;
    case 'handoff':
      return 'handoff';
  }
}

function TranscriptItem({ item, conversation }: { item: Item; conversation: Conversation }) {
  const { workspace } = useConsole();
  switch (item.kind) {
    case 'message':
      return <MessageLine message={item.message} mine={item.message.agent_id === workspace.staff.id} />;
    case 'pending':
      return <PendingLine pending={item.pending} />;
    case 'event':
      return (
        <li class="tl-event">
          <span>
            {clock(item.at)} · {label(t().events, item.event.kind)}
            {typeof item.event.data?.note === 'string' && item.event.data.note
              ? ` — ${item.event.data.note}`
              : ''}
          </span>
        </li>
      );
    case 'handoff':
      return (
        <li class="tl-handoff">
          <HandoffCard handoff={item.handoff} conversation={conversation} />
        </li>
      );
  }
}

function MessageLine({ message, mine }: { message: Message; mine: boolean }) {
  const side = message.author === 'customer' ? 'in' : message.author === 'system' ? 'sys' : 'out';
  const who = message.internal ? t().internalNote : mine ? t().you : t().authors[message.author];
  return (
    <li class={`msg msg--${side} msg--${message.author}${message.internal ? ' msg--note' : ''}`}>
      <div class="msg__meta">
        <span class="msg__who">{who}</span>
        <time dateTime={message.created_at}>{clock(message.created_at)}</time>
        {message.internal && <span class="muted">{t().internalNoteHint}</span>}
      </div>
      <div class="msg__bubble">{message.text}</div>
      {message.sources.length > 0 && (
        <div class="msg__sources">
          {t().sources}
          {message.sources.map((s) => s.title).join(lang.value === 'zh' ? '、' : ', ')}
        </div>
      )}
      {message.author === 'agent' && !message.internal && message.delivery_status && (
        <div class={`msg__status msg__status--${message.delivery_status}`}>
          {t().status[message.delivery_status]}
          {message.delivery_error ? ` · ${message.delivery_error}` : ''}
        </div>
      )}
    </li>
  );
}

function PendingLine({ pending }: { pending: PendingSend }) {
  const { workspace } = useConsole();
  return (
    <li class={`msg msg--out msg--agent msg--pending${pending.internal ? ' msg--note' : ''}`}>
      <div class="msg__meta">
        <span class="msg__who">{pending.internal ? t().internalNote : t().you}</span>
      </div>
      <div class="msg__bubble">{pending.text}</div>
      <div class={`msg__status msg__status--${pending.failed ? 'failed' : 'pending'}`}>
        {pending.failed ? `${t().status.failed} · ${pending.failed}` : t().status.pending}
        {pending.failed && (
          <>
            <button type="button" class="btn btn--link" onClick={() => workspace.retry(pending.clientId)}>
              {t().retry}
            </button>
            <button type="button" class="btn btn--link" onClick={() => workspace.discard(pending.clientId)}>
              {t().cancel}
            </button>
          </>
        )}
      </div>
    </li>
  );
}

function HandoffCard({ handoff, conversation }: { handoff: HandoffContext; conversation: Conversation }) {
  const { workspace } = useConsole();
  const verification = conversation.detail?.verification ?? null;
  const context = workspace.customer360.value.get(conversation.summary.id);
  const riskTags = context?.state === 'ok' ? context.value.customer.risk_tags : [];
  return (
    <section class="handoff" aria-label={t().handoffTitle}>
      <h3>{t().handoffTitle}</h3>
      <dl class="kv">
        <Row term={t().reason}>
          <strong>{label(t().reasons, handoff.reason)}</strong>
        </Row>
        <Row term={t().intent}>
          {handoff.intent ?? '–'}
          {handoff.confidence !== null && (
            <span class="muted">
              {' '}
              · {t().confidence} {Math.round(handoff.confidence * 100)}%
            </span>
          )}
        </Row>
        <Row term={t().articlesShown}>
          {handoff.articles_shown.length ? (
            <ul class="plain">
              {handoff.articles_shown.map((a) => (
                <li key={a.id}>
                  {a.title} <span class="muted">({a.id})</span>
                </li>
              ))}
            </ul>
          ) : (
            t().none
          )}
        </Row>
        {handoff.summary && <Row term={t().summary}>{handoff.summary}</Row>}
        <Row term={t().verification}>
          {verification?.verified ? (
            <span class="tag tag--ok">{t().verified}</span>
          ) : (
            <span class="tag tag--warn">{t().unverified}</span>
          )}
          {verification && (
            <span class="muted">
              {' '}
              {[verification.method, label(t().channels, verification.channel), verification.address_masked]
                .filter(Boolean)
                .join(' · ')}
            </span>
          )}
        </Row>
        <Row term={t().riskTags}>
          {riskTags.length
            ? riskTags.map((tag) => (
                <span key={tag} class="tag tag--danger">
                  {tag}
                </span>
              ))
            : t().none}
        </Row>
        <Row term={t().channel}>
          {label(t().channels, conversation.summary.channel)} · {label(t().skills, handoff.skill)}
          <span class="muted"> · {handoff.bot}</span>
        </Row>
      </dl>
    </section>
  );
}

export function Row({ term, children }: { term: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{term}</dt>
      <dd>{children}</dd>
    </>
  );
}

function SuggestionStrip({ conversationId }: { conversationId: number }) {
  const { workspace, ui } = useConsole();
  const suggestions = workspace.suggestions.value;
  const results = suggestions?.conversationId === conversationId ? suggestions.results.slice(0, 3) : [];
  if (!results.length) return null;
  return (
    <div class="strip" aria-label={t().quickSuggestions}>
      <span class="strip__label">{t().quickSuggestions}</span>
      {results.map((r) => (
        <button
          key={r.id}
          type="button"
          class="chip"
          title={r.snippet}
          onClick={() => ui.insert(conversationId, r.snippet)}
        >
          {r.title}
        </button>
      ))}
    </div>
  );
}

function Composer({ conversation }: { conversation: Conversation }) {
  const { workspace, ui } = useConsole();
  const id = conversation.summary.id;
  const readOnly = conversation.watching || conversation.summary.status !== 'assigned';
  const note = ui.mode.value === 'note';
  const draft = ui.draft(id);
  const language = conversation.summary.language ?? lang.value;
  const picked = useSignal(0);
  const query = useComputed(() => {
    const text = ui.drafts.value.get(id) ?? '';
    return text.startsWith('/') && !/\s/.test(text) ? text.slice(1).toLowerCase() : null;
  });
  const canned = workspace.canned.value.get(language) ?? [];
  const matches = query.value === null ? [] : filterCanned(canned, query.value).slice(0, 8);

  useEffect(() => {
    if (query.value !== null) void workspace.loadCanned(language);
    picked.value = 0;
  }, [query.value, language]);

  const submit = () => {
    if (readOnly || !draft.trim()) return;
    workspace.send(id, draft, note);
    ui.setDraft(id, '');
  };
  const choose = (reply: CannedReply) => {
    ui.setDraft(id, '');
    ui.insert(id, reply.text);
  };
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.isComposing) return; // an IME is composing Chinese: Enter picks its candidate
    if (matches.length) {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        const step = event.key === 'ArrowDown' ? 1 : -1;
        picked.value = (picked.value + step + matches.length) % matches.length;
        return;
      }
      if (event.key === 'Enter' || event.key === 'Tab') {
        event.preventDefault();
        choose(matches[picked.value] ?? matches[0]!);
        return;
      }
      if (event.key === 'Escape') {
        event.preventDefault();
        ui.setDraft(id, '');
        return;
      }
    }
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey || !event.shiftKey)) {
      event.preventDefault();
      submit();
    }
  };

  return (
    <form
      class={`composer${note ? ' composer--note' : ''}`}
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <div class="composer__modes" role="tablist" aria-label={t().composerReply + ' / ' + t().composerNote}>
        <button
          type="button"
          role="tab"
          aria-selected={!note}
          class="composer__mode"
          onClick={() => (ui.mode.value = 'reply')}
        >
          {t().composerReply}
        </button>
        <button
          type="button"
          role="tab"
          aria-selected={note}
          aria-keyshortcuts="Alt+N"
          class="composer__mode composer__mode--note"
          onClick={() => (ui.mode.value = 'note')}
        >
          {t().composerNote} <kbd>Alt+N</kbd>
        </button>
        {readOnly && (
          <span class="muted">{conversation.watching ? t().watching : t().closedConversation}</span>
        )}
      </div>
      {matches.length > 0 && (
        <ul class="picker" role="listbox" aria-label={t().cannedSearch}>
          {matches.map((reply, i) => (
            <li
              key={reply.id}
              role="option"
              aria-selected={i === picked.value}
              class="picker__item"
              onMouseDown={(e) => {
                e.preventDefault();
                choose(reply);
              }}
            >
              <span class="picker__shortcut">{shortcutOf(reply)}</span>
              <span class="picker__title">{reply.title}</span>
              <span class="picker__text">{reply.text}</span>
            </li>
          ))}
        </ul>
      )}
      <div class="composer__row">
        <textarea
          ref={(el) => {
            ui.composer = el;
          }}
          class="composer__input"
          rows={3}
          aria-label={note ? t().composerLabelNote : t().composerLabelReply}
          placeholder={note ? t().composerPlaceholderNote : t().composerPlaceholderReply}
          disabled={readOnly}
          value={draft}
          onInput={(e) => {
            ui.setDraft(id, e.currentTarget.value);
            if (!note) workspace.composing(id);
          }}
          onKeyDown={onKeyDown}
        />
        <button
          type="submit"
          class="btn btn--primary"
          disabled={readOnly || !draft.trim()}
          aria-keyshortcuts="Control+Enter"
        >
          {note ? t().addNote : t().send}
        </button>
      </div>
    </form>
  );
}

/** Shortcuts are shown as typed, with one leading slash whether or not the hub stores it. */
export function shortcutOf(reply: CannedReply): string {
  return `/${reply.shortcut.replace(/^\//, '')}`;
}

export function filterCanned(replies: CannedReply[], query: string): CannedReply[] {
  const q = query.trim().toLowerCase();
  if (!q) return replies;
  return replies.filter(
    (r) =>
      r.shortcut.toLowerCase().includes(q) ||
      r.title.toLowerCase().includes(q) ||
      r.text.toLowerCase().includes(q),
  );
}
