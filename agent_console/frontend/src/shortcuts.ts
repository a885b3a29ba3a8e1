// Keyboard shortcuts for the whole console (the reply box handles Enter and `/` itself).
// Alt+letter shortcuts match the physical key (`event.code`), since Alt changes `event.key`
// on macOS and on some layouts.
import type { Ui } from './ui';
import type { Workspace } from './workspace';

function isEditable(target: EventTarget | null): boolean {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))
  );
}

/** Install the shortcuts; returns the function that removes them. */
export function installShortcuts(workspace: Workspace, ui: Ui): () => void {
  const onKey = (event: KeyboardEvent) => {
    if (event.defaultPrevented || ui.dialog.value) return; // a dialog owns the keyboard
    const active = workspace.active.value;
    const mayAct = active !== null && !active.watching && active.summary.status === 'assigned';
    if (event.altKey && !event.ctrlKey && !event.metaKey) {
      const firstOffer = workspace.offers.value[0];
      const actions: Record<string, (() => void) | undefined> = {
        KeyA: firstOffer && (() => void workspace.accept(firstOffer.conversation.id)),
        KeyD: firstOffer && (() => void workspace.decline(firstOffer.conversation.id)),
        KeyT: mayAct ? () => (ui.dialog.value = 'transfer') : undefined,
        KeyW: mayAct ? () => (ui.dialog.value = 'wrapUp') : undefined,
        KeyN: active
          ? () => {
              ui.mode.value = ui.mode.value === 'reply' ? 'note' : 'reply';
              ui.focusComposer();
            }
          : undefined,
        KeyK: () => {
          ui.view.value = 'agent';
          ui.sideTab.value = 'knowledge';
          requestAnimationFrame(() => ui.kbSearch?.focus());
        },
        ArrowUp: () => workspace.step(-1),
        ArrowDown: () => workspace.step(1),
      };
      const action = actions[event.code];
      if (action) {
        event.preventDefault();
        action();
      }
      return;
    }
    if (event.key === '?' && !event.ctrlKey && !event.metaKey && !isEditable(event.target)) {
      event.preventDefault();
      ui.dialog.value = 'help';
    }
  };
  window.addEventListener('keydown', onKey);
  return () => window.removeEventListener('keydown', onKey);
}
