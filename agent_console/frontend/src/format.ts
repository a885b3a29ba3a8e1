// Formatting of times, durations and money for the current language.
import { signal } from '@preact/signals';
import { t } from './i18n';

/** The time in milliseconds, ticking once a second: durations shown in the UI read it. */
export const now = signal(Date.now());
setInterval(() => {
  now.value = Date.now();
}, 1000);

export function secondsSince(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const at = Date.parse(iso);
  return Number.isNaN(at) ? null : Math.max(0, Math.floor((now.value - at) / 1000));
}

export function secondsUntil(iso: string): number {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? 0 : Math.max(0, Math.ceil((at - now.value) / 1000));
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

function locale(): string {
  return t().htmlLang;
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  return at.toLocaleString(locale(), {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  });
}

export function clock(iso: string | null | undefined): string {
  if (!iso) return '';
  const at = new Date(iso);
  return Number.isNaN(at.getTime())
    ? ''
    : at.toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit' });
}

export function day(iso: string | null | undefined): string {
  if (!iso) return '–';
  // A bare date (maturity) is a calendar day, not an instant: show it as written.
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) return iso;
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleDateString(locale());
}

export function money(amount: string | number | null | undefined, currency: string): string {
  if (amount === null || amount === undefined || amount === '') return '–';
  const value = typeof amount === 'number' ? amount : Number(amount);
  if (Number.isNaN(value)) return String(amount);
  return new Intl.NumberFormat(locale(), {
    style: 'currency',
    currency: currency || 'CNY',
    minimumFractionDigits: 2,
  }).format(value);
}

export function percent(share: number | null | undefined): string {
  return share === null || share === undefined ? '–' : `${Math.round(share * 1000) / 10}%`;
}

/** Days from today until a calendar date (negative when past), or null. */
export function daysUntil(date: string | null | undefined): number | null {
  if (!date) return null;
  const at = Date.parse(`${date.slice(0, 10)}T00:00:00`);
  return Number.isNaN(at) ? null : Math.ceil((at - now.value) / 86_400_000);
}
