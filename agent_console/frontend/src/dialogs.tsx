// Modal dialogs on native <dialog>: focus moves in and is trapped, Esc closes, focus returns.
import { useSignal } from '@preact/signals';
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { ApiError } from './api';
import { label, t } from './i18n';
import type { Resolution, TransferTarget } from './types';
import { useConsole } from './ui';

function Dialog({ title, children }: { title: string; children: ComponentChildren }) {
  const { ui } = useConsole();
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    ref.current?.showModal();
    return () => opener?.focus();
  }, []);
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="dialog-title" onClose={() => (ui.dialog.value = null)}>
      <h2 id="dialog-title">{title}</h2>
      {children}
    </dialog>
  );
}

function Actions({ submitLabel, disabled }: { submitLabel: string; disabled: boolean }) {
  const { ui } = useConsole();
  return (
    <div class="dialog__actions">
      <button type="button" class="btn" onClick={() => (ui.dialog.value = null)}>
        {t().cancel}
      </button>
      <button type="submit" class="btn btn--primary" disabled={disabled}>
        {submitLabel}
      </button>
    </div>
  );
}

export function TransferDialog() {
  const { workspace, ui } = useConsole();
  const conversation = workspace.active.value;
  const to = useSignal<'skill' | 'agent'>('skill');
  const skill = useSignal(conversation?.summary.skill ?? 'general');
  const agentId = useSignal<number | null>(null);
  const note = useSignal('');
  const targets = useSignal<TransferTarget[] | null>(null);
  const busy = useSignal(false);
  useEffect(() => {
    workspace.api.transferTargets().then(
      (agents) => (targets.value = agents.filter((a) => a.id !== workspace.staff.id)),
      (error: unknown) => {
        targets.value = [];
        // A hub without the agent list still transfers to skills; say nothing about it.
        if (!(error instanceof ApiError && error.status === 404)) workspace.fail(error);
      },
    );
  }, []);
  if (!conversation) return null;
  const skills = Object.keys(t().skills);
  const ready = note.value.trim().length > 0 && (to.value === 'skill' || agentId.value !== null);
  return (
    <Dialog title={`${t().transferTitle} · ${conversation.summary.customer.display_name ?? t().anonymous}`}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!ready || busy.value) return;
          busy.value = true;
          const target = to.value === 'agent' ? { toAgentId: agentId.value! } : { toSkill: skill.value };
          const done = await workspace.transfer(conversation.summary.id, target, note.value.trim());
          busy.value = false;
          if (done) ui.dialog.value = null;
        }}
      >
        <fieldset class="field">
          <legend>{t().transferTo}</legend>
          <label class="radio">
            <input
              type="radio"
              name="to"
              checked={to.value === 'skill'}
              onChange={() => (to.value = 'skill')}
            />
            {t().toSkill}
          </label>
          <label class="radio">
            <input
              type="radio"
              name="to"
              checked={to.value === 'agent'}
              onChange={() => (to.value = 'agent')}
            />
            {t().toAgent}
          </label>
        </fieldset>
        {to.value === 'skill' ? (
          <label class="field">
            <span>{t().skill}</span>
            <select value={skill.value} onChange={(e) => (skill.value = e.currentTarget.value)}>
              {skills.map((code) => (
                <option key={code} value={code}>
                  {label(t().skills, code)}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <label class="field">
            <span>{t().chooseAgent}</span>
            <select
              value={agentId.value === null ? '' : String(agentId.value)}
              onChange={(e) => (agentId.value = e.currentTarget.value ? Number(e.currentTarget.value) : null)}
            >
              <option value="">
                {targets.value === null ? t().loading : targets.value.length ? '—' : t().noAgents}
              </option>
              {(targets.value ?? []).map((agent) => (
                <option key={agent.id} value={agent.id} disabled={agent.presence === 'offline'}>
                  {agent.display_name} · {t().presence[agent.presence]} ·{' '}
                  {t().load(agent.active_conversations, agent.capacity)} ·{' '}
                  {agent.skills.map((s) => label(t().skills, s)).join('/')}
                </option>
              ))}
            </select>
          </label>
        )}
        <label class="field">
          <span>{t().transferNote}</span>
          <textarea
            required
            rows={3}
            value={note.value}
            onInput={(e) => (note.value = e.currentTarget.value)}
          />
        </label>
        <Actions submitLabel={t().transfer} disabled={!ready || busy.value} />
      </form>
    </Dialog>
  );
}

export function WrapUpDialog() {
  const { workspace, ui } = useConsole();
  const conversation = workspace.active.value;
  const resolution = useSignal<Resolution>('resolved');
  const topic = useSignal(conversation?.summary.topic ?? conversation?.detail?.handoff?.intent ?? '');
  const note = useSignal('');
  const busy = useSignal(false);
  if (!conversation) return null;
  const resolutions: Resolution[] = ['resolved', 'unresolved', 'follow_up', 'transferred_out'];
  const topics = [conversation.summary.topic, conversation.detail?.handoff?.intent].filter((x): x is string =>
    Boolean(x),
  );
  return (
    <Dialog title={`${t().wrapUpTitle} · ${conversation.summary.customer.display_name ?? t().anonymous}`}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (busy.value || !topic.value.trim()) return;
          busy.value = true;
          const done = await workspace.wrapUp(
            conversation.summary.id,
            resolution.value,
            topic.value.trim(),
            note.value,
          );
          busy.value = false;
          if (done) ui.dialog.value = null;
        }}
      >
        <fieldset class="field">
          <legend>{t().resolution}</legend>
          {resolutions.map((code) => (
            <label key={code} class="radio">
              <input
                type="radio"
                name="resolution"
                value={code}
                checked={resolution.value === code}
                onChange={() => (resolution.value = code)}
              />
              {label(t().resolutions, code)}
            </label>
          ))}
        </fieldset>
        <label class="field">
          <span>{t().topic}</span>
          <input
            required
            list="wrap-topics"
            value={topic.value}
            onInput={(e) => (topic.value = e.currentTarget.value)}
          />
          <datalist id="wrap-topics">
            {topics.map((x) => (
              <option key={x} value={x} />
            ))}
          </datalist>
        </label>
        <label class="field">
          <span>{t().wrapUpNote}</span>
          <textarea rows={2} value={note.value} onInput={(e) => (note.value = e.currentTarget.value)} />
        </label>
        <Actions submitLabel={t().wrapUp} disabled={busy.value || !topic.value.trim()} />
      </form>
    </Dialog>
  );
}

export function HelpDialog() {
  const { ui } = useConsole();
  return (
    <Dialog title={t().shortcutsTitle}>
      <table class="grid shortcuts">
        <tbody>
          {t().shortcuts.map(([keys, what]) => (
            <tr key={keys}>
              <th scope="row">
                <kbd>{keys}</kbd>
              </th>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="dialog__actions">
        <button type="button" class="btn btn--primary" autoFocus onClick={() => (ui.dialog.value = null)}>
          {t().close}
        </button>
      </div>
    </Dialog>
  );
}
