// The side panel: customer 360, knowledge base (suggestions + search), canned replies.
import type { ComponentChildren } from 'preact';
import { useSignal } from '@preact/signals';
import { useEffect, useRef } from 'preact/hooks';
import { Row, filterCanned, shortcutOf } from './chat';
import { SegmentBadge } from './conversations';
import { dateTime, day, daysUntil, money } from './format';
import { label, lang, t } from './i18n';
import { may } from './session';
import type { Customer360, Holding, KbResult, RevealField, SuggestedMatch } from './types';
import { type SideTab, useConsole } from './ui';
import { type Conversation, messageOf, revealKey } from './workspace';

const MATURES_SOON_DAYS = 30;

export function SidePanel() {
  const { workspace, ui } = useConsole();
  const conversation = workspace.active.value;
  const tabs: SideTab[] = ['customer', 'knowledge', 'canned'];
  return (
    <aside class="side" aria-label={t().tabs[ui.sideTab.value]}>
      <div class="tabs" role="tablist">
        {tabs.map((tab) => (
          <button
            key={tab}
            type="button"
            role="tab"
            id={`tab-${tab}`}
            aria-selected={ui.sideTab.value === tab}
            aria-controls="side-panel"
            class="tabs__tab"
            onClick={() => (ui.sideTab.value = tab)}
          >
            {t().tabs[tab]}
          </button>
        ))}
      </div>
      <div class="side__body" id="side-panel" role="tabpanel" aria-labelledby={`tab-${ui.sideTab.value}`}>
        {ui.sideTab.value === 'customer' &&
          (conversation ? (
            <CustomerPanel conversation={conversation} />
          ) : (
            <p class="empty">{t().selectConversation}</p>
          ))}
        {ui.sideTab.value === 'knowledge' && <KnowledgePanel conversation={conversation} />}
        {ui.sideTab.value === 'canned' && <CannedPanel conversation={conversation} />}
      </div>
    </aside>
  );
}

// -- customer 360 -------------------------------------------------------------------------------

function CustomerPanel({ conversation }: { conversation: Conversation }) {
  const { workspace } = useConsole();
  const id = conversation.summary.id;
  const loaded = workspace.customer360.value.get(id);
  if (!loaded || loaded.state === 'loading') return <p class="empty">{t().loading}</p>;
  if (loaded.state === 'error') {
    return (
      <p class="empty" role="alert">
        {t().loadFailed}: {loaded.message}{' '}
        <button type="button" class="btn btn--small" onClick={() => void workspace.loadCustomer360(id)}>
          {t().retry}
        </button>
      </p>
    );
  }
  return <Customer360View data={loaded.value} conversation={conversation} />;
}

function Customer360View({ data, conversation }: { data: Customer360; conversation: Conversation }) {
  const { customer } = data;
  const profile = customer.profile;
  const alerts = [...data.alerts].sort((a, b) => Number(b.active) - Number(a.active));
  const verification = conversation.detail?.verification;
  return (
    <div class="c360" aria-label={t().customer360}>
      <section class="c360__head">
        <h3>
          {customer.display_name ?? t().anonymous}
          {customer.external_id && <span class="muted"> · {customer.external_id}</span>}
        </h3>
        <div class="tags">
          {customer.segment && <SegmentBadge segment={customer.segment} />}
          {customer.risk_preference && (
            <span class="tag tag--info" title={t().riskPreference}>
              {t().riskPreference}: {label(t().riskPreferences, customer.risk_preference)}
            </span>
          )}
          {customer.risk_tags.map((tag) => (
            <span key={tag} class="tag tag--danger">
              {tag}
            </span>
          ))}
          <span class={`tag ${verification?.verified ? 'tag--ok' : 'tag--warn'}`}>
            {verification?.verified ? t().verified : t().unverified}
            {verification?.method ? ` · ${verification.method}` : ''}
          </span>
        </div>
      </section>

      {alerts.length > 0 && (
        <section class="c360__alerts" aria-label={t().alerts}>
          {alerts.map((alert, i) => (
            <p
              key={i}
              class={`alert${alert.active ? ' alert--active' : ''}`}
              role={alert.active ? 'alert' : undefined}
            >
              <strong>{alert.kind}</strong> {alert.text} <span class="muted">{day(alert.at)}</span>
            </p>
          ))}
        </section>
      )}

      <Section title={t().profile}>
        <dl class="kv">
          {(['phone', 'national_id'] as const).map((field) =>
            profile[field] ? (
              <Row key={field} term={t().profileFields[field]!}>
                <Masked customerId={customer.id} field={field} value={String(profile[field])} />
              </Row>
            ) : null,
          )}
          {Object.entries(profile)
            .filter(
              ([key, value]) => !['phone', 'national_id', 'risk_preference'].includes(key) && isShown(value),
            )
            .map(([key, value]) => (
              <Row key={key} term={label(t().profileFields, key)}>
                {String(value)}
              </Row>
            ))}
          {customer.language && <Row term={t().profileFields.language!}>{customer.language}</Row>}
        </dl>
      </Section>

      <Section title={t().holdings} count={data.holdings.length}>
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">
                {t().product} / {t().account}
              </th>
              <th scope="col" class="num">
                {t().amount}
              </th>
              <th scope="col">{t().maturity}</th>
            </tr>
          </thead>
          <tbody>
            {data.holdings.map((holding, i) => (
              <HoldingRow key={holding.id ?? i} holding={holding} customerId={customer.id} />
            ))}
          </tbody>
        </table>
      </Section>

      <Section title={t().transactions} count={data.transactions.length}>
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">{t().date}</th>
              <th scope="col">{t().description}</th>
              <th scope="col" class="num">
                {t().amount}
              </th>
            </tr>
          </thead>
          <tbody>
            {data.transactions.map((tx, i) => (
              <tr key={i}>
                <td class="nowrap">{day(tx.at)}</td>
                <td>{tx.description}</td>
                <td class={`num ${Number(tx.amount) < 0 ? 'debit' : 'credit'}`}>
                  {money(tx.amount, tx.currency)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <Section title={t().cases} count={data.cases.length}>
        <ul class="plain list">
          {data.cases.map((c, i) => (
            <li key={c.id ?? i}>
              <span class="tag">{c.status}</span> {c.subject}{' '}
              <span class="muted">
                {c.external_ref ?? (typeof c.id === 'string' ? c.id : '')} · {day(c.opened_at)}
              </span>
            </li>
          ))}
        </ul>
      </Section>

      <Section title={t().contacts} count={data.contacts.length}>
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">{t().date}</th>
              <th scope="col">{t().channel}</th>
              <th scope="col">{t().topic}</th>
              <th scope="col">{t().outcome}</th>
              <th scope="col">{t().csat}</th>
            </tr>
          </thead>
          <tbody>
            {data.contacts.map((contact) => (
              <tr key={contact.conversation_id}>
                <td class="nowrap">{dateTime(contact.opened_at)}</td>
                <td>{label(t().channels, contact.channel)}</td>
                <td>
                  {contact.topic ?? '–'}
                  {contact.handoff && <span class="muted"> · {t().handedOff}</span>}
                </td>
                <td>{contact.resolution ? label(t().resolutions, contact.resolution) : contact.status}</td>
                <td>
                  {contact.csat_score === null
                    ? '–'
                    : `${'★'.repeat(contact.csat_score)}${'☆'.repeat(5 - contact.csat_score)}`}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <Section title={t().identities} count={data.identities.length}>
        <ul class="plain list">
          {data.identities.map((identity, i) => (
            <li key={i}>
              {label(t().channels, identity.channel)} <span class="mono">{identity.address}</span>{' '}
              {identity.verified && <span class="tag tag--ok">{t().verified}</span>}
            </li>
          ))}
        </ul>
      </Section>

      <MatchesSection data={data} conversation={conversation} />
    </div>
  );
}

/** Records that may be the same person; a merge (confirmed, with a reason) and its undo. */
function MatchesSection({ data, conversation }: { data: Customer360; conversation: Conversation }) {
  const { workspace } = useConsole();
  const merging = useSignal<SuggestedMatch | null>(null);
  const undoing = useSignal(false);
  const id = conversation.summary.id;
  const made = workspace.merges.value.get(id);
  const canMerge = may.merge(workspace.staff) && (!conversation.watching || may.supervise(workspace.staff));
  const name = data.customer.display_name ?? t().anonymous;
  if (!made && data.suggested_matches.length === 0) return null;
  return (
    <Section title={t().suggestedMatches} count={made ? undefined : data.suggested_matches.length}>
      {made && (
        <p class="merge-done" role="status">
          {t().mergedBanner(made.otherName)}{' '}
          <button type="button" class="btn btn--small" onClick={() => (undoing.value = true)}>
            {t().undoMerge}
          </button>
        </p>
      )}
      <ul class="plain list matches">
        {data.suggested_matches.map((match) => (
          <li key={match.customer_id}>
            {match.display_name ?? `#${match.customer_id}`}{' '}
            <span class="muted">
              #{match.customer_id} ·{' '}
              {match.evidence.map((e) => label(t().evidence, e)).join(lang.value === 'zh' ? '、' : ', ')}
            </span>
            {canMerge && (
              <button
                type="button"
                class="btn btn--small"
                aria-label={`${t().merge} ${match.display_name ?? `#${match.customer_id}`}`}
                onClick={() => (merging.value = match)}
              >
                {t().merge}
              </button>
            )}
          </li>
        ))}
      </ul>
      {merging.value && (
        <ReasonDialog
          title={t().mergeTitle(merging.value.display_name ?? `#${merging.value.customer_id}`, name)}
          explain={t().mergeExplain}
          reasonLabel={t().mergeReason}
          onCancel={() => (merging.value = null)}
          onConfirm={async (reason) => {
            await workspace.merge(id, merging.value!, reason);
            merging.value = null;
          }}
        />
      )}
      {undoing.value && made && (
        <ReasonDialog
          title={t().undoTitle(made.otherName)}
          explain={t().undoExplain}
          reasonLabel={t().undoReason}
          onCancel={() => (undoing.value = false)}
          onConfirm={async (reason) => {
            await workspace.undoMerge(id, reason);
            undoing.value = false;
          }}
        />
      )}
    </Section>
  );
}

function isShown(value: unknown): boolean {
  return value !== null && value !== undefined && value !== '' && typeof value !== 'object';
}

function Section({ title, count, children }: { title: string; count?: number; children: ComponentChildren }) {
  const empty = count === 0;
  return (
    <section class="c360__section">
      <h4>
        {title}
        {count !== undefined && <span class="muted"> {count}</span>}
      </h4>
      {empty ? <p class="muted">{t().nothing}</p> : children}
    </section>
  );
}

function HoldingRow({ holding, customerId }: { holding: Holding; customerId: number }) {
  const days = daysUntil(holding.maturity_date);
  const soon = days !== null && days >= 0 && days <= MATURES_SOON_DAYS;
  return (
    <tr>
      <td>
        <div class="holding__name">
          <span class="tag">{label(t().holdingKinds, holding.kind)}</span> {holding.product_name}
          {holding.status !== 'active' && <span class="muted"> · {holding.status}</span>}
        </div>
        {holding.account_number && (
          <Masked
            customerId={customerId}
            field="account_number"
            value={holding.account_number}
            holdingId={holding.id}
          />
        )}
      </td>
      <td class="num nowrap">{money(holding.amount, holding.currency)}</td>
      <td class={`nowrap${soon ? ' soon' : ''}`}>
        {day(holding.maturity_date)}
        {soon && (
          <>
            <br />
            <span class="tag tag--warn">{t().maturesSoon}</span>
          </>
        )}
      </td>
    </tr>
  );
}

/** A masked number, with a Show button for roles that may reveal (asks why; audited). */
function Masked({
  customerId,
  field,
  value,
  holdingId,
}: {
  customerId: number;
  field: RevealField;
  value: string;
  holdingId?: number | string | undefined;
}) {
  const { workspace } = useConsole();
  const asking = useSignal(false);
  const full = workspace.revealed.value.get(revealKey(customerId, field, holdingId));
  const canReveal = may.reveal(workspace.staff) && (field !== 'account_number' || holdingId !== undefined);
  return (
    <span class="masked">
      <span class="mono" data-masked={full ? undefined : 'true'}>
        {full ?? value}
      </span>
      {full && <span class="muted"> {t().revealed}</span>}
      {!full && canReveal && (
        <button
          type="button"
          class="btn btn--link"
          aria-label={`${t().reveal} ${t().revealFields[field]}`}
          onClick={() => (asking.value = true)}
        >
          {t().reveal}
        </button>
      )}
      {asking.value && (
        <ReasonDialog
          title={`${t().revealTitle}: ${t().revealFields[field]}`}
          explain={t().revealExplain}
          reasonLabel={t().revealReason}
          onCancel={() => (asking.value = false)}
          onConfirm={async (reason) => {
            await workspace.reveal(customerId, field, reason, holdingId);
            asking.value = false;
          }}
        />
      )}
    </span>
  );
}

/** An audited action's confirmation: what it does, and a reason of at least 5 characters. */
function ReasonDialog({
  title,
  explain,
  reasonLabel,
  onCancel,
  onConfirm,
}: {
  title: string;
  explain: string;
  reasonLabel: string;
  onCancel: () => void;
  onConfirm: (reason: string) => Promise<void>;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const reason = useSignal('');
  const error = useSignal<string | null>(null);
  const busy = useSignal(false);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  return (
    <dialog ref={dialog} class="dialog" aria-labelledby="reason-title" onClose={onCancel}>
      <form
        method="dialog"
        onSubmit={async (e) => {
          e.preventDefault();
          if (busy.value) return;
          busy.value = true;
          try {
            await onConfirm(reason.value.trim());
          } catch (err) {
            error.value = messageOf(err);
          } finally {
            busy.value = false;
          }
        }}
      >
        <h2 id="reason-title">{title}</h2>
        <p>{explain}</p>
        <label class="field">
          <span>{reasonLabel}</span>
          <input
            required
            minLength={5}
            autoFocus
            value={reason.value}
            onInput={(e) => (reason.value = e.currentTarget.value)}
          />
        </label>
        {error.value && (
          <p role="alert" class="error">
            {error.value}
          </p>
        )}
        <div class="dialog__actions">
          <button type="button" class="btn" onClick={onCancel}>
            {t().cancel}
          </button>
          <button
            type="submit"
            class="btn btn--primary"
            disabled={busy.value || reason.value.trim().length < 5}
          >
            {t().confirm}
          </button>
        </div>
      </form>
    </dialog>
  );
}

// -- knowledge ----------------------------------------------------------------------------------

function KnowledgePanel({ conversation }: { conversation: Conversation | null }) {
  const { workspace, ui } = useConsole();
  const query = useSignal('');
  const results = useSignal<KbResult[] | null>(null);
  const suggestions = workspace.suggestions.value;
  const suggested =
    conversation && suggestions?.conversationId === conversation.summary.id ? suggestions.results : [];
  const insert =
    conversation && !conversation.watching
      ? (r: KbResult) => ui.insert(conversation.summary.id, r.snippet)
      : null;
  return (
    <div class="kb">
      <form
        class="kb__search"
        role="search"
        onSubmit={async (e) => {
          e.preventDefault();
          if (!query.value.trim()) return;
          try {
            results.value = await workspace.api.searchKb(query.value.trim());
          } catch (error) {
            workspace.fail(error);
          }
        }}
      >
        <input
          ref={(el) => {
            ui.kbSearch = el;
          }}
          type="search"
          aria-label={t().kbSearch}
          aria-keyshortcuts="Alt+K"
          placeholder={t().kbSearchPlaceholder}
          value={query.value}
          onInput={(e) => (query.value = e.currentTarget.value)}
        />
      </form>
      {results.value !== null && (
        <section aria-label={t().kbSearch}>
          {results.value.length ? (
            <KbList results={results.value} onInsert={insert} />
          ) : (
            <p class="muted">{t().noResults}</p>
          )}
        </section>
      )}
      <section aria-labelledby="kb-suggested">
        <h4 id="kb-suggested">{t().suggestions}</h4>
        {suggested.length ? (
          <KbList results={suggested} onInsert={insert} />
        ) : (
          <p class="muted">{t().noSuggestions}</p>
        )}
      </section>
    </div>
  );
}

function KbList({ results, onInsert }: { results: KbResult[]; onInsert: ((r: KbResult) => void) | null }) {
  return (
    <ul class="plain cards">
      {results.map((r) => (
        <li key={r.id} class="card">
          <div class="card__head">
            <strong>{r.title}</strong>
            <span class="muted">{r.id}</span>
            <span class="topbar__spacer" />
            {onInsert && (
              <button type="button" class="btn btn--small" onClick={() => onInsert(r)}>
                {t().insert}
              </button>
            )}
          </div>
          <p class="card__text">{r.snippet}</p>
        </li>
      ))}
    </ul>
  );
}

// -- canned replies ------------------------------------------------------------------------------

function CannedPanel({ conversation }: { conversation: Conversation | null }) {
  const { workspace, ui } = useConsole();
  const language = useSignal(conversation?.summary.language ?? lang.value);
  const query = useSignal('');
  useEffect(() => {
    void workspace.loadCanned(language.value);
  }, [language.value]);
  const replies = filterCanned(workspace.canned.value.get(language.value) ?? [], query.value);
  return (
    <div class="canned">
      <div class="canned__bar">
        <input
          type="search"
          aria-label={t().cannedSearch}
          placeholder={t().cannedSearch}
          value={query.value}
          onInput={(e) => (query.value = e.currentTarget.value)}
        />
        <div class="seg-switch" role="radiogroup" aria-label={t().language}>
          {(['zh', 'en'] as const).map((code) => (
            <button
              key={code}
              type="button"
              role="radio"
              aria-checked={language.value === code}
              onClick={() => (language.value = code)}
            >
              {code === 'zh' ? '中文' : 'English'}
            </button>
          ))}
        </div>
      </div>
      <p class="muted">{t().cannedHint}</p>
      {replies.length === 0 ? (
        <p class="muted">{t().cannedEmpty}</p>
      ) : (
        <ul class="plain cards">
          {replies.map((reply) => (
            <li key={reply.id} class="card">
              <div class="card__head">
                <span class="mono">{shortcutOf(reply)}</span>
                <strong>{reply.title}</strong>
                <span class="topbar__spacer" />
                {conversation && !conversation.watching && (
                  <button
                    type="button"
                    class="btn btn--small"
                    onClick={() => ui.insert(conversation.summary.id, reply.text)}
                  >
                    {t().insert}
                  </button>
                )}
              </div>
              <p class="card__text">{reply.text}</p>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
