// The shapes of docs/console-contract.md, as the hub sends them. Keep in step with the contract.

export type Role = 'agent' | 'supervisor' | 'editor' | 'admin';
export type Presence = 'available' | 'away' | 'offline';
export type ConversationStatus = 'bot' | 'queued' | 'assigned' | 'closed';
export type Author = 'customer' | 'bot' | 'agent' | 'system';
export type Resolution = 'resolved' | 'unresolved' | 'follow_up' | 'transferred_out';
export type DeliveryStatus = 'pending' | 'sent' | 'delivered' | 'failed';
export type RevealField = 'phone' | 'national_id' | 'account_number';

export interface Staff {
  id: number;
  username: string;
  display_name: string;
  role: Role;
  skills: string[];
  languages: string[];
  max_concurrent: number;
  locale: string;
}

export interface LoginResult {
  token: string;
  expires_at: string;
  staff: Staff;
}

export interface SourceRef {
  id: string;
  title: string;
}

export interface HandoffContext {
  reason: string;
  skill: string;
  intent: string | null;
  confidence: number | null;
  articles_shown: SourceRef[];
  summary: string;
  bot: string;
  signals: Record<string, number>;
}

export interface Verification {
  verified: boolean;
  method: string | null;
  channel: string | null;
  address_masked: string | null;
}

export interface ConversationSummary {
  id: number;
  status: ConversationStatus;
  channel: string;
  skill: string | null;
  priority: number;
  topic: string | null;
  language: string | null;
  customer: { id: number; display_name: string | null; segment: string | null; verified: boolean };
  assigned_agent_id: number | null;
  offered_agent_id: number | null;
  opened_at: string;
  handoff_at: string | null;
  accepted_at: string | null;
  waiting_seconds: number | null;
  last_message: { author: Author; text: string; created_at: string } | null;
  unread: number;
}

export interface Message {
  id: number;
  conversation_id: number;
  author: Author;
  agent_id: number | null;
  text: string;
  internal: boolean;
  sources: SourceRef[];
  delivery_status: DeliveryStatus | null;
  delivery_error: string | null;
  created_at: string;
  client_id: string | null;
}

export interface ConversationEvent {
  id?: number;
  kind: string;
  at: string;
  agent_id?: number | null;
  data?: Record<string, unknown>;
}

export interface ConversationDetail extends ConversationSummary {
  messages: Message[];
  events: ConversationEvent[];
  handoff: HandoffContext | null;
  verification: Verification | null;
}

/** `screen_pop`: a phone call is being put through to this agent (docs/console-contract.md). */
export interface ScreenPop {
  conversation_id: number;
  channel: string;
  caller: string | null; // masked
  conversation: ConversationSummary;
  handoff: HandoffContext | null;
}

export interface Offer {
  conversation: ConversationSummary;
  handoff: HandoffContext | null;
  expires_at: string;
}

export interface Holding {
  id?: number | string;
  kind: string;
  product_name: string;
  account_number: string | null;
  amount: string | number | null;
  currency: string;
  maturity_date: string | null;
  status: string;
  details: Record<string, unknown>;
}

export interface Transaction {
  at: string;
  description: string;
  amount: string | number;
  currency: string;
  channel: string | null;
}

export interface Alert {
  kind: string;
  text: string;
  at: string;
  active: boolean;
}

export interface CustomerCase {
  id?: number | string;
  external_ref?: string | null;
  subject: string;
  status: string;
  opened_at: string;
  closed_at?: string | null;
}

export interface Contact {
  conversation_id: number;
  channel: string;
  opened_at: string;
  closed_at: string | null;
  topic: string | null;
  status: string;
  resolution: string | null;
  csat_score: number | null;
  handoff: boolean;
}

export interface Customer360 {
  customer: {
    id: number;
    external_id: string | null;
    display_name: string | null;
    segment: string | null;
    risk_tags: string[];
    risk_preference: string | null;
    language: string | null;
    profile: Record<string, unknown>;
  };
  identities: { channel: string; address: string; verified: boolean; method: string | null }[];
  holdings: Holding[];
  transactions: Transaction[];
  alerts: Alert[];
  cases: CustomerCase[];
  contacts: Contact[];
  suggested_matches: SuggestedMatch[];
}

export interface KbResult {
  id: string;
  title: string;
  score: number;
  snippet: string;
}

export interface CannedReply {
  id: number;
  shortcut: string;
  title: string;
  text: string;
  skill: string | null;
}

/** The answer to a merge or its undo (POST /api/customers/{id}/merge, …/undo). */
export interface MergeResult {
  merge_id: number;
  survivor_id: number;
  merged_id: number;
  undone_at?: string | null;
}

/** A suggested match (Customer360.suggested_matches). */
export interface SuggestedMatch {
  customer_id: number;
  display_name: string | null;
  evidence: string[];
}

/** A colleague one may transfer to (GET /api/agents). */
export interface TransferTarget {
  id: number;
  display_name: string;
  presence: Presence;
  skills: string[];
  active_conversations: number;
  capacity: number;
}

export interface QueueStats {
  skill: string;
  waiting: number;
  longest_wait_seconds: number;
  sla_30s_today: number | null;
  offered: number;
}

export interface AgentStats {
  id: number;
  display_name: string;
  presence: Presence;
  skills: string[];
  active_conversations: number;
  capacity: number;
  idle_since: string | null;
  last_heartbeat_at: string | null;
}

export interface Wallboard {
  at: string;
  queues: QueueStats[];
  agents: AgentStats[];
  today: Record<string, unknown>;
}

export interface SlaBreach {
  conversation_id: number;
  skill: string;
  waiting_seconds: number;
}

export interface ErrorBody {
  code: string;
  message: string;
}

/** A Socket.IO ack: `{"ok": true, ...}` or `{"error": {...}}`. */
export type Ack<T = Record<string, never>> = ({ ok: true } & T) | { ok?: false; error: ErrorBody };
