// State of the screen itself (not of the hub): which view, tab and dialog, and reply drafts.
import { createContext } from 'preact';
import { signal } from '@preact/signals';
import { useContext } from 'preact/hooks';
import type { Supervision } from './supervision';
import type { Workspace } from './workspace';

export type View = 'agent' | 'wallboard';
export type SideTab = 'customer' | 'knowledge' | 'canned';
export type DialogName = 'transfer' | 'wrapUp' | 'help' | null;
export type ComposerMode = 'reply' | 'note';

export class Ui {
  readonly view = signal<View>('agent');
  readonly sideTab = signal<SideTab>('customer');
  readonly dialog = signal<DialogName>(null);
  readonly mode = signal<ComposerMode>('reply');
  readonly drafts = signal<ReadonlyMap<number, string>>(new Map());
  composer: HTMLTextAreaElement | null = null;
  kbSearch: HTMLInputElement | null = null;

  draft(conversationId: number): string {
    return this.drafts.value.get(conversationId) ?? '';
  }

  setDraft(conversationId: number, text: string): void {
    this.drafts.value = new Map(this.drafts.value).set(conversationId, text);
  }

  /** Put text into the reply box (after what is there) and give it the focus, for editing. */
  insert(conversationId: number, text: string): void {
    const current = this.draft(conversationId).trimEnd();
    this.setDraft(conversationId, current ? `${current}\n${text}` : text);
    this.mode.value = 'reply';
    requestAnimationFrame(() => {
      const box = this.composer;
      if (!box) return;
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    });
  }

  focusComposer(): void {
    this.composer?.focus();
  }
}

export interface ConsoleContext {
  workspace: Workspace;
  supervision: Supervision | null;
  ui: Ui;
}

export const Ctx = createContext<ConsoleContext | null>(null);

export function useConsole(): ConsoleContext {
  const context = useContext(Ctx);
  if (!context) throw new Error('useConsole outside the console');
  return context;
}
