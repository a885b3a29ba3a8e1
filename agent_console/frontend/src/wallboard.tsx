// The supervisor's wallboard: queues by skill, agents, live conversations, SLA breach alerts.
import { useEffect } from 'preact/hooks';
import { SegmentBadge } from './conversations';
import { duration, percent, secondsSince } from './format';
import { label, t } from './i18n';
import type { Wallboard as Board } from './types';
import { useConsole } from './ui';

const SLA_SECONDS = 30;

export function Wallboard() {
  const { supervision, ui, workspace } = useConsole();
  useEffect(() => {
    supervision?.start();
    return () => supervision?.stop();
  }, [supervision]);
  if (!supervision) return null;
  const board = supervision.wallboard.value;
  const breached = supervision.breaches.value;
  const takeOver = async (id: number) => {
    if (await supervision.takeOver(id)) ui.view.value = 'agent';
  };
  const watch = async (id: number) => {
    ui.view.value = 'agent';
    await workspace.watch(id);
  };
  return (
    <main class="wallboard" aria-label={t().wallboard}>
      {supervision.breaches.value.length > 0 && (
        <section class="breaches" aria-label="SLA">
          {supervision.breaches.value.map((b) => (
            <p key={b.conversation_id} class="alert alert--active" role="alert">
              <span>
                {t().slaBreach(b.conversation_id, label(t().skills, b.skill), Math.round(b.waiting_seconds))}
              </span>
              <span class="topbar__spacer" />
              <button
                type="button"
                class="btn btn--small btn--primary"
                onClick={() => void takeOver(b.conversation_id)}
              >
                {t().takeOver}
              </button>
              <button
                type="button"
                class="btn btn--small"
                onClick={() => supervision.dismiss(b.conversation_id)}
              >
                {t().dismiss}
              </button>
            </p>
          ))}
        </section>
      )}
      {board ? <Today board={board} /> : <p class="empty">{t().loading}</p>}
      <div class="wallboard__grid">
        <section class="panel" aria-labelledby="wb-queues">
          <h2 id="wb-queues" class="pane-title">
            {t().queues}
          </h2>
          <table class="grid grid--big">
            <thead>
              <tr>
                <th scope="col">{t().skill}</th>
                <th scope="col" class="num">
                  {t().waiting}
                </th>
                <th scope="col" class="num">
                  {t().longestWait}
                </th>
                <th scope="col" class="num">
                  {t().offered}
                </th>
                <th scope="col" class="num">
                  {t().slaToday}
                </th>
              </tr>
            </thead>
            <tbody>
              {(board?.queues ?? []).map((q) => (
                <tr
                  key={q.skill}
                  class={
                    q.longest_wait_seconds >= SLA_SECONDS || breached.some((b) => b.skill === q.skill)
                      ? 'breach'
                      : ''
                  }
                >
                  <th scope="row">{label(t().skills, q.skill)}</th>
                  <td class="num">{q.waiting}</td>
                  <td class="num">{duration(q.longest_wait_seconds)}</td>
                  <td class="num">{q.offered}</td>
                  <td class="num">{percent(q.sla_30s_today)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section class="panel" aria-labelledby="wb-agents">
          <h2 id="wb-agents" class="pane-title">
            {t().agents}
          </h2>
          <table class="grid grid--big">
            <thead>
              <tr>
                <th scope="col">{t().agent}</th>
                <th scope="col">{t().presenceCol}</th>
                <th scope="col">{t().loadCol}</th>
                <th scope="col">{t().idle}</th>
                <th scope="col">{t().skill}</th>
              </tr>
            </thead>
            <tbody>
              {(board?.agents ?? []).map((a) => (
                <tr key={a.id}>
                  <th scope="row">{a.display_name}</th>
                  <td>
                    <span class={`dot dot--${a.presence}`} aria-hidden="true" />
                    {t().presence[a.presence]}
                  </td>
                  <td>
                    <meter
                      min={0}
                      max={Math.max(1, a.capacity)}
                      value={a.active_conversations}
                      aria-label={t().loadCol}
                    />{' '}
                    {t().load(a.active_conversations, a.capacity)}
                  </td>
                  <td>
                    {a.presence === 'available' && a.active_conversations === 0
                      ? duration(secondsSince(a.idle_since))
                      : '–'}
                  </td>
                  <td class="muted">{a.skills.map((s) => label(t().skills, s)).join(' ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
      <section class="panel" aria-labelledby="wb-live">
        <h2 id="wb-live" class="pane-title">
          {t().conversations}
        </h2>
        <table class="grid grid--big">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">{t().customer}</th>
              <th scope="col">{t().skill}</th>
              <th scope="col">{t().statusCol}</th>
              <th scope="col">{t().agent}</th>
              <th scope="col" class="num">
                {t().elapsed}
              </th>
              <th scope="col">
                <span class="sr-only">{t().takeOver}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {supervision.live.value.map((c) => {
              const agent = board?.agents.find((a) => a.id === (c.assigned_agent_id ?? c.offered_agent_id));
              const waited = c.status === 'queued' ? secondsSince(c.handoff_at) : secondsSince(c.accepted_at);
              const mine = c.assigned_agent_id === workspace.staff.id;
              return (
                <tr
                  key={c.id}
                  class={
                    c.status === 'queued' &&
                    ((waited ?? 0) >= SLA_SECONDS || breached.some((b) => b.conversation_id === c.id))
                      ? 'breach'
                      : ''
                  }
                >
                  <td>{c.id}</td>
                  <td>
                    {c.customer.display_name ?? t().anonymous}{' '}
                    {c.customer.segment && <SegmentBadge segment={c.customer.segment} />}
                  </td>
                  <td>{label(t().skills, c.skill)}</td>
                  <td>{c.status === 'queued' ? t().queued : t().assigned}</td>
                  <td>{agent?.display_name ?? '–'}</td>
                  <td class="num">{duration(waited)}</td>
                  <td class="actions">
                    {!mine && (
                      <button type="button" class="btn btn--small" onClick={() => void watch(c.id)}>
                        {t().listen}
                      </button>
                    )}
                    {!mine && (
                      <button
                        type="button"
                        class="btn btn--small btn--primary"
                        onClick={() => void takeOver(c.id)}
                      >
                        {t().takeOver}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
    </main>
  );
}

const TODAY_KEYS = [
  'conversations',
  'first_response_time_s',
  'speed_of_answer_s',
  'handle_time_s',
  'sla_30s',
  'fcr',
  'bot_containment',
  'abandonment',
] as const;

/** Today's headline metrics; `today` has the shape of GET /api/metrics (overall, or flat). */
function Today({ board }: { board: Board }) {
  const source = (board.today.overall ?? board.today) as Record<string, unknown>;
  return (
    <section class="kpis" aria-label={t().todayMetrics}>
      {TODAY_KEYS.map((key) => (
        <div key={key} class="kpi">
          <span class="kpi__label">{label(t().metrics, key)}</span>
          <span class="kpi__value">{metricValue(key, source[key])}</span>
        </div>
      ))}
    </section>
  );
}

function metricValue(key: string, value: unknown): string {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'object' && 'mean' in value) {
    const mean = (value as { mean: number | null }).mean;
    return mean === null ? '–' : duration(mean);
  }
  if (typeof value !== 'number') return String(value);
  return key === 'conversations' ? String(value) : percent(value);
}
