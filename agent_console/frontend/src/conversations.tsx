// The agent's conversation list (unread counts, waiting times) and the offer toasts.
import { duration, secondsSince, secondsUntil } from './format';
import { label, t } from './i18n';
import type { ConversationSummary, Offer } from './types';
import { useConsole } from './ui';
import type { Conversation } from './workspace';

/** Seconds before the customer is shown as waiting too long for a reply. */
const SLOW_REPLY_SECONDS = 60;

export function ConversationList() {
  const { workspace } = useConsole();
  const list = workspace.ordered.value;
  return (
    <nav class="convlist" aria-labelledby="convlist-title">
      <h2 id="convlist-title" class="pane-title">
        {t().myConversations} <span class="muted">{list.length}</span>
      </h2>
      {list.length === 0 ? (
        <p class="empty">{t().noConversations}</p>
      ) : (
        <ul class="convlist__items">
          {list.map((c) => (
            <ConversationItem
              key={c.summary.id}
              conversation={c}
              active={c.summary.id === workspace.activeId.value}
              onSelect={() => workspace.activate(c.summary.id)}
            />
          ))}
        </ul>
      )}
    </nav>
  );
}

function ConversationItem({
  conversation,
  active,
  onSelect,
}: {
  conversation: Conversation;
  active: boolean;
  onSelect: () => void;
}) {
  const { summary } = conversation;
  const last = conversation.messages[conversation.messages.length - 1] ?? summary.last_message;
  const customerWaits = last?.author === 'customer' && summary.status === 'assigned';
  const waited = customerWaits ? secondsSince(last.created_at) : secondsSince(summary.accepted_at);
  const name = summary.customer.display_name ?? t().anonymous;
  return (
    <li>
      <button
        type="button"
        class={`convitem${active ? ' convitem--active' : ''}${summary.status === 'closed' ? ' convitem--closed' : ''}`}
        aria-current={active ? 'true' : undefined}
        onClick={onSelect}
      >
        <span class="convitem__row">
          <span class="convitem__name">{name}</span>
          {summary.customer.segment && <SegmentBadge segment={summary.customer.segment} />}
          {summary.unread > 0 && (
            <span class="badge convitem__unread" aria-label={t().unread(summary.unread)}>
              {summary.unread}
            </span>
          )}
        </span>
        <span class="convitem__row convitem__meta">
          <span>{label(t().channels, summary.channel)}</span>
          <span>·</span>
          <span>{label(t().skills, summary.skill)}</span>
          {conversation.watching && <span class="tag">{t().watching}</span>}
          <span class="topbar__spacer" />
          {summary.status === 'closed' ? (
            <span>{t().closedConversation}</span>
          ) : (
            <span class={customerWaits && (waited ?? 0) > SLOW_REPLY_SECONDS ? 'late' : ''}>
              {customerWaits ? t().customerWaiting(duration(waited)) : t().handling(duration(waited))}
            </span>
          )}
        </span>
        {last && <span class="convitem__preview">{last.text}</span>}
      </button>
    </li>
  );
}

export function SegmentBadge({ segment }: { segment: string }) {
  const premium = segment === 'hnw' || segment === 'private';
  return (
    <span class={`seg${premium ? ' seg--premium' : ''}`} title={t().segment}>
      {label(t().segments, segment)}
    </span>
  );
}

export function OfferToasts() {
  const { workspace } = useConsole();
  const offers = workspace.offers.value;
  // Always in the page, empty or not: a live region must exist before what it announces.
  return (
    <section class="offers" aria-label={t().offerTitle} aria-live="assertive">
      {offers.map((offer, i) => (
        <OfferToast key={offer.conversation.id} offer={offer} first={i === 0} />
      ))}
    </section>
  );
}

function OfferToast({ offer, first }: { offer: Offer; first: boolean }) {
  const { workspace } = useConsole();
  const c: ConversationSummary = offer.conversation;
  const left = secondsUntil(offer.expires_at);
  const name = c.customer.display_name ?? t().anonymous;
  return (
    <div
      class="offer"
      role="alertdialog"
      aria-labelledby={`offer-${c.id}`}
      aria-describedby={`offer-${c.id}-why`}
    >
      <div class="offer__head">
        <strong id={`offer-${c.id}`}>
          {t().offerTitle}: {name}
        </strong>
        {c.customer.segment && <SegmentBadge segment={c.customer.segment} />}
        {c.customer.verified && <span class="tag tag--ok">{t().verified}</span>}
      </div>
      <p class="offer__why" id={`offer-${c.id}-why`}>
        {label(t().channels, c.channel)} · {label(t().skills, c.skill ?? offer.handoff?.skill)} ·{' '}
        {label(t().reasons, offer.handoff?.reason)}
        {offer.handoff?.intent ? ` · ${offer.handoff.intent}` : ''}
      </p>
      {c.last_message && <p class="offer__text">{c.last_message.text}</p>}
      <div class="offer__actions">
        <span class="muted">{t().expiresIn(left)}</span>
        <span class="topbar__spacer" />
        <button
          type="button"
          class="btn btn--small"
          aria-keyshortcuts={first ? 'Alt+D' : undefined}
          onClick={() => void workspace.decline(c.id)}
        >
          {t().decline}
          {first && <kbd>Alt+D</kbd>}
        </button>
        <button
          type="button"
          class="btn btn--primary btn--small"
          aria-keyshortcuts={first ? 'Alt+A' : undefined}
          onClick={() => void workspace.accept(c.id)}
        >
          {t().accept}
          {first && <kbd>Alt+A</kbd>}
        </button>
      </div>
    </div>
  );
}
