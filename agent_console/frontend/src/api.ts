// The hub's HTTP API (docs/console-contract.md, "HTTP"), typed. Errors become ApiError.
import type {
  CannedReply,
  ConversationDetail,
  ConversationStatus,
  ConversationSummary,
  Customer360,
  ErrorBody,
  KbResult,
  LoginResult,
  MergeResult,
  RevealField,
  Staff,
  TransferTarget,
} from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called when the hub says the session is over, so the app can show the login again. */
export type OnUnauthenticated = () => void;

export class Api {
  constructor(
    private readonly token: string,
    private readonly onUnauthenticated: OnUnauthenticated,
  ) {}

  me(): Promise<Staff> {
    return this.request('GET', '/api/auth/me');
  }

  async logout(): Promise<void> {
    await this.request('POST', '/api/auth/logout', {});
  }

  async conversations(status: ConversationStatus, mine = false): Promise<ConversationSummary[]> {
    const query = new URLSearchParams({ status });
    if (mine) query.set('mine', '1');
    const body = await this.request<{ conversations: ConversationSummary[] }>(
      'GET',
      `/api/conversations?${query}`,
    );
    return body.conversations;
  }

  conversation(id: number): Promise<ConversationDetail> {
    return this.request('GET', `/api/conversations/${id}`);
  }

  customerContext(customerId: number, conversationId: number, reason: string): Promise<Customer360> {
    const query = new URLSearchParams({ conversation_id: String(conversationId), reason });
    return this.request('GET', `/api/customers/${customerId}/context?${query}`);
  }

  async reveal(
    customerId: number,
    field: RevealField,
    reason: string,
    holdingId?: number | string,
  ): Promise<string> {
    const payload: Record<string, unknown> = { field, reason };
    if (holdingId !== undefined) payload.holding_id = holdingId;
    const body = await this.request<{ value: string }>(
      'POST',
      `/api/customers/${customerId}/reveal`,
      payload,
    );
    return body.value;
  }

  /** Merge `otherCustomerId` into `customerId` (or the other way round: the hub picks the survivor). */
  merge(customerId: number, otherCustomerId: number, reason: string): Promise<MergeResult> {
    return this.request('POST', `/api/customers/${customerId}/merge`, {
      other_customer_id: otherCustomerId,
      reason,
    });
  }

  undoMerge(mergeId: number, reason: string): Promise<MergeResult> {
    return this.request('POST', `/api/customer-merges/${mergeId}/undo`, { reason });
  }

  async suggest(conversationId: number): Promise<KbResult[]> {
    const body = await this.request<{ results: KbResult[] }>(
      'GET',
      `/api/kb/suggest?conversation_id=${conversationId}`,
    );
    return body.results;
  }

  async searchKb(q: string): Promise<KbResult[]> {
    const query = new URLSearchParams({ q, k: '5' });
    const body = await this.request<{ results: KbResult[] }>('GET', `/api/kb/search?${query}`);
    return body.results;
  }

  async cannedReplies(language: string): Promise<CannedReply[]> {
    const body = await this.request<{ replies: CannedReply[] }>(
      'GET',
      `/api/canned-replies?language=${encodeURIComponent(language)}`,
    );
    return body.replies;
  }

  async transferTargets(): Promise<TransferTarget[]> {
    const body = await this.request<{ agents: TransferTarget[] }>('GET', '/api/agents');
    return body.agents;
  }

  private request<T>(method: string, path: string, payload?: unknown): Promise<T> {
    return request<T>(method, path, payload, this.token).catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 401) this.onUnauthenticated();
      throw error;
    });
  }
}

export function logIn(username: string, password: string): Promise<LoginResult> {
  return request('POST', '/api/auth/login', { username, password });
}

async function request<T>(method: string, path: string, payload?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (payload !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: payload === undefined ? null : JSON.stringify(payload),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'The hub could not be reached.');
  }
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = isErrorBody(body)
      ? body
      : { code: 'http_' + response.status, message: response.statusText };
    throw new ApiError(response.status, error.code, error.message);
  }
  return body as T;
}

function isErrorBody(body: unknown): body is ErrorBody {
  return typeof body === 'object' && body !== null && 'code' in body && 'message' in body;
}
