// The console's frame: the login, then the shell (top bar, views, notices, shortcuts).
import { useComputed, useSignal } from '@preact/signals';
import { useEffect, useMemo } from 'preact/hooks';
import { Api, ApiError, logIn } from './api';
import { ChatPane } from './chat';
import { ConversationList, OfferToasts } from './conversations';
import { HelpDialog, TransferDialog, WrapUpDialog } from './dialogs';
import { lang, setLang, t } from './i18n';
import { unlockAttention, unlockSound } from './notify';
import { openManager } from './realtime';
import { type Session, clearSession, loadSession, may, saveSession } from './session';
import { installShortcuts } from './shortcuts';
import { SidePanel } from './side';
import { Supervision } from './supervision';
import type { Presence } from './types';
import { Ctx, Ui, useConsole } from './ui';
import { Wallboard } from './wallboard';
import { Workspace } from './workspace';

export function App() {
  const session = useSignal<Session | null>(loadSession());
  const ended = useSignal(false);
  const onEnd = (expired: boolean) => {
    clearSession();
    ended.value = expired;
    session.value = null;
  };
  useEffect(() => {
    document.title = t().appTitle;
  }, [lang.value]);
  if (!session.value) {
    return (
      <Login
        expired={ended.value}
        onLogin={(s) => {
          ended.value = false;
          session.value = s;
        }}
      />
    );
  }
  if (!may.handleConversations(session.value.staff) && !may.supervise(session.value.staff)) {
    return <NoAccess session={session.value} onEnd={onEnd} />;
  }
  return <Console key={session.value.token} session={session.value} onEnd={onEnd} />;
}

/** Staff whose role works no conversations (editors) are told so, not left with a dead console. */
function NoAccess({ session, onEnd }: { session: Session; onEnd: (expired: boolean) => void }) {
  const logOut = () => new Api(session.token, () => onEnd(true)).logout().finally(() => onEnd(false));
  return (
    <main class="login">
      <div class="login__card" role="alert">
        <h1>{t().noAccessTitle}</h1>
        <p>{t().noAccess(session.staff.display_name)}</p>
        <button type="button" class="btn btn--primary" onClick={logOut}>
          {t().logOut}
        </button>
      </div>
    </main>
  );
}

function Login({ expired, onLogin }: { expired: boolean; onLogin: (session: Session) => void }) {
  const username = useSignal('');
  const password = useSignal('');
  const busy = useSignal(false);
  const error = useSignal<string | null>(expired ? t().sessionEnded : null);
  const submit = async (event: Event) => {
    event.preventDefault();
    unlockAttention(); // a user gesture: the only moment browsers allow sound to be prepared
    busy.value = true;
    error.value = null;
    try {
      onLogin(saveSession(await logIn(username.value, password.value)));
    } catch (e) {
      const code = e instanceof ApiError ? e.code : 'network';
      error.value = t().loginErrors[code] ?? (e instanceof ApiError ? e.message : t().loginErrors.network!);
    } finally {
      busy.value = false;
    }
  };
  return (
    <main class="login">
      <form class="login__card" onSubmit={submit} aria-labelledby="login-title">
        <div class="login__head">
          <h1 id="login-title">{t().loginTitle}</h1>
          <LanguageSwitch />
        </div>
        <label class="field">
          <span>{t().username}</span>
          <input
            name="username"
            autocomplete="username"
            required
            autoFocus
            value={username.value}
            onInput={(e) => (username.value = e.currentTarget.value)}
          />
        </label>
        <label class="field">
          <span>{t().password}</span>
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password.value}
            onInput={(e) => (password.value = e.currentTarget.value)}
          />
        </label>
        {error.value && (
          <p class="login__error" role="alert">
            {error.value}
          </p>
        )}
        <button class="btn btn--primary" type="submit" disabled={busy.value}>
          {busy.value ? t().loggingIn : t().logIn}
        </button>
      </form>
    </main>
  );
}

function LanguageSwitch() {
  return (
    <button
      type="button"
      class="btn btn--ghost btn--small"
      aria-label={t().language}
      onClick={() => setLang(lang.value === 'zh' ? 'en' : 'zh')}
    >
      {t().switchLanguage}
    </button>
  );
}

function Console({ session, onEnd }: { session: Session; onEnd: (expired: boolean) => void }) {
  const context = useMemo(() => {
    const expire = () => onEnd(true);
    const api = new Api(session.token, expire);
    const manager = openManager();
    const workspace = new Workspace(session.staff, api, manager, session.token, expire);
    const supervision = may.supervise(session.staff)
      ? new Supervision(api, workspace, manager, session.token)
      : null;
    const ui = new Ui();
    if (!may.handleConversations(session.staff) || (supervision && !session.staff.skills.length)) {
      ui.view.value = 'wallboard';
    }
    return { workspace, supervision, ui };
  }, [session.token]);

  useEffect(() => {
    const { workspace, supervision, ui } = context;
    const uninstall = installShortcuts(workspace, ui);
    // After a reload the login click is gone: the first gesture on the page enables the beep.
    window.addEventListener('pointerdown', unlockSound, { once: true });
    window.addEventListener('keydown', unlockSound, { once: true });
    return () => {
      uninstall();
      window.removeEventListener('pointerdown', unlockSound);
      window.removeEventListener('keydown', unlockSound);
      supervision?.close();
      workspace.close(); // the Manager closes its WebSocket when its last socket leaves
    };
  }, [context]);

  const { workspace, ui } = context;
  useEffect(() => {
    const unread = workspace.totalUnread.value;
    document.title = unread ? `(${unread}) ${t().appTitle}` : t().appTitle;
  }, [workspace.totalUnread.value, lang.value]);

  return (
    <Ctx.Provider value={context}>
      <div class="shell">
        <TopBar onLogout={() => workspace.api.logout().finally(() => onEnd(false))} />
        {ui.view.value === 'wallboard' && context.supervision ? (
          <Wallboard />
        ) : (
          <main class="workspace">
            <ConversationList />
            <ChatPane />
            <SidePanel />
          </main>
        )}
        <OfferToasts />
        <Notices />
        {ui.dialog.value === 'transfer' && <TransferDialog />}
        {ui.dialog.value === 'wrapUp' && <WrapUpDialog />}
        {ui.dialog.value === 'help' && <HelpDialog />}
      </div>
    </Ctx.Provider>
  );
}

function TopBar({ onLogout }: { onLogout: () => void }) {
  const { workspace, supervision, ui } = useConsole();
  const staff = workspace.staff;
  const connection = workspace.connection.value;
  const breaches = supervision?.breaches.value.length ?? 0;
  const views = useComputed(() => (supervision ? (['agent', 'wallboard'] as const) : []));
  return (
    <header class="topbar">
      <span class="topbar__brand">{t().brand}</span>
      {views.value.length > 0 && (
        <nav class="tabs tabs--top" aria-label={t().views.agent + ' / ' + t().views.wallboard}>
          {views.value.map((view) => (
            <button
              key={view}
              type="button"
              class="tabs__tab"
              aria-current={ui.view.value === view ? 'page' : undefined}
              onClick={() => (ui.view.value = view)}
            >
              {t().views[view]}
              {view === 'wallboard' && breaches > 0 && <span class="badge badge--danger">{breaches}</span>}
              {view === 'agent' && workspace.totalUnread.value > 0 && (
                <span class="badge">{workspace.totalUnread.value}</span>
              )}
            </button>
          ))}
        </nav>
      )}
      <span class="topbar__spacer" />
      {may.handleConversations(staff) && <PresenceSwitch />}
      <span class={`conn conn--${connection}`} role="status" aria-live="polite">
        {t().connection[connection]}
      </span>
      <LanguageSwitch />
      <button
        type="button"
        class="btn btn--ghost btn--small"
        aria-keyshortcuts="?"
        onClick={() => (ui.dialog.value = 'help')}
      >
        ? {t().help}
      </button>
      <span class="topbar__who" title={staff.username}>
        {staff.display_name}
      </span>
      <button type="button" class="btn btn--ghost btn--small" onClick={onLogout}>
        {t().logOut}
      </button>
    </header>
  );
}

function PresenceSwitch() {
  const { workspace } = useConsole();
  const statuses: Presence[] = ['available', 'away', 'offline'];
  return (
    <div class="presence" role="radiogroup" aria-label={t().presenceLabel}>
      {statuses.map((status) => (
        <button
          key={status}
          type="button"
          role="radio"
          aria-checked={workspace.presence.value === status}
          class={`presence__option presence__option--${status}`}
          onClick={() => {
            // A click is a user gesture: the moment to ask for notifications and sound.
            if (status === 'available') unlockAttention();
            void workspace.setPresence(status);
          }}
        >
          {t().presence[status]}
        </button>
      ))}
    </div>
  );
}

function Notices() {
  const { workspace } = useConsole();
  return (
    <div class="notices" aria-live="assertive">
      {workspace.notices.value.map((notice) => (
        <div
          key={notice.id}
          class={`notice notice--${notice.kind}`}
          role={notice.kind === 'error' ? 'alert' : 'status'}
        >
          <span>{notice.text}</span>
          <button
            type="button"
            class="btn btn--ghost btn--small"
            aria-label={t().dismiss}
            onClick={() => workspace.dismiss(notice.id)}
          >
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
