/*
 * servicehub web-chat widget.
 *
 * Embed with one tag (see docs/webchat.md):
 *   <script src="https://hub.example/widget.js" data-token="…" async></script>
 *
 * Plain JavaScript, no dependencies and no build step, so a firm can audit exactly
 * what runs on its pages. It speaks Socket.IO v5 over Engine.IO v4 on a single
 * WebSocket to the hub's `/chat` namespace, renders inside a shadow root so the host
 * page's CSS cannot reach it, and inserts every piece of chat text as a text node.
 */
(() => {
  'use strict';

  // A page that includes the tag twice must not get two widgets.
  if (window.ServiceHub && window.ServiceHub.version) return;

  const VERSION = '1.0.0';
  const NAMESPACE = '/chat';
  const HOST_TAG = 'servicehub-webchat';

  const RECONNECT_MIN_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  // A WebSocket to a black-holed address can sit in CONNECTING for minutes.
  const CONNECT_TIMEOUT_MS = 20000;
  const TYPING_IDLE_MS = 3000;
  // If the server never says "stopped typing" (say, it restarted), hide the dots anyway.
  const TYPING_STALE_MS = 30000;

  const STRINGS = {
    zh: {
      locale: 'zh-CN',
      title: '在线客服',
      subtitle: '7×24 小时为您服务',
      launcher: '在线客服',
      openChat: '打开在线客服',
      closeChat: '关闭在线客服',
      greeting: '您好！请问有什么可以帮您？',
      log: '对话记录',
      inputLabel: '输入您的问题',
      placeholder: '请输入您的问题…',
      send: '发送',
      hint: 'Enter 发送，Shift + Enter 换行',
      privacy: '为保障资金安全，请勿在对话中发送密码、验证码或完整卡号。',
      authors: { customer: '我', bot: '智能助手', agent: '人工客服', system: '系统消息' },
      sources: '来源：',
      listSeparator: '、',
      sending: '发送中…',
      sent: '已发送',
      failed: '发送失败',
      retry: '重试',
      errors: {
        payload_too_large: '消息过长，请分几条发送',
        rate_limited: '发送过于频繁，请稍候再试',
      },
      verified: '已验证身份',
      typing: { bot: '智能助手正在输入', agent: '客服正在输入' },
      queue: (n) => (n === null
        ? '正在为您转接人工客服，请稍候…'
        : `正在为您转接人工客服，您当前排在第 ${n} 位`),
      connecting: '正在连接…',
      reconnecting: '连接已中断，正在重新连接…',
      unread: (n) => `${n} 条未读消息`,
    },
    en: {
      locale: 'en',
      title: 'Help & support',
      subtitle: 'We are here 24/7',
      launcher: 'Chat with us',
      openChat: 'Chat with us',
      closeChat: 'Close chat',
      greeting: 'Hello! How can we help you today?',
      log: 'Conversation',
      inputLabel: 'Type your question',
      placeholder: 'Type your question…',
      send: 'Send',
      hint: 'Enter to send, Shift + Enter for a new line',
      privacy: 'For your security, never share passwords, one-time codes or full card numbers in chat.',
      authors: { customer: 'You', bot: 'Virtual assistant', agent: 'Agent', system: 'Notice' },
      sources: 'Source: ',
      listSeparator: '; ',
      sending: 'Sending…',
      sent: 'Sent',
      failed: 'Not sent',
      retry: 'Retry',
      errors: {
        payload_too_large: 'message too long, please split it up',
        rate_limited: 'sending too fast, please wait a moment',
      },
      verified: 'Verified',
      typing: { bot: 'Assistant is typing', agent: 'Agent is typing' },
      queue: (n) => (n === null
        ? 'Connecting you to an agent — please wait…'
        : `Connecting you to an agent — you are number ${n} in the queue`),
      connecting: 'Connecting…',
      reconnecting: 'Connection lost — reconnecting…',
      unread: (n) => `${n} unread ${n === 1 ? 'message' : 'messages'}`,
    },
  };

  // ---------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------

  /** Random hex id; getRandomValues (unlike randomUUID) also exists on plain-http pages. */
  function randomId(prefix) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function normaliseLanguage(value) {
    const lang = String(value || '').toLowerCase();
    if (lang.startsWith('zh')) return 'zh';
    if (lang.startsWith('en')) return 'en';
    return null;
  }

  function browserLanguage() {
    for (const lang of navigator.languages || [navigator.language]) {
      const known = normaliseLanguage(lang);
      if (known) return known;
    }
    return 'en';
  }

  /**
   * The `sub` claim of a JWT, read WITHOUT verifying it. Only used to notice that a
   * different customer logged in on this browser, so the widget starts a fresh local
   * visitor; the hub does the real verification.
   */
  function tokenSubject(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
      return claims.sub === undefined || claims.sub === null ? null : String(claims.sub);
    } catch {
      return null;
    }
  }

  /**
   * JSON in localStorage under a per-hub prefix. Storage can be disabled (privacy
   * modes, sandboxed frames) or full: the widget then keeps state for this page only.
   */
  class Store {
    constructor(prefix) {
      this.prefix = prefix;
      this.memory = new Map();
    }

    get(key) {
      try {
        const raw = localStorage.getItem(this.prefix + key);
        if (raw !== null) return JSON.parse(raw);
      } catch {
        // fall through to the in-memory copy
      }
      return this.memory.has(key) ? this.memory.get(key) : null;
    }

    set(key, value) {
      this.memory.set(key, value);
      try {
        localStorage.setItem(this.prefix + key, JSON.stringify(value));
      } catch {
        // memory-only, see above
      }
    }

    remove(key) {
      this.memory.delete(key);
      try {
        localStorage.removeItem(this.prefix + key);
      } catch {
        // memory-only, see above
      }
    }
  }

  /**
   * Build an element. Children that are strings become text nodes, so no caller can
   * accidentally turn chat text into markup.
   */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  const ICONS = {
    chat: 'M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6A.5.5 0 0 1 5 19.2V16h0a2.5 2.5 0 0 1-1-2V5.5Z',
    close: 'M6 6l12 12M18 6 6 18',
    send: 'M4 12 20 4l-5 16-3.5-6.5L4 12Zm7.5 1.5L20 4',
    shield: 'M12 3 5 6v5.5c0 4.2 2.9 8 7 9.5 4.1-1.5 7-5.3 7-9.5V6l-7-3Zm-3 9 2.2 2.2L15.5 10',
    agent: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8Zm-7 8.5c.8-3.3 3.6-5.5 7-5.5s6.2 2.2 7 5.5',
  };

  function icon(name) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', `sh-icon sh-icon--${name}`);
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', ICONS[name]);
    svg.append(path);
    return svg;
  }

  // ---------------------------------------------------------------------------------
  // Socket.IO v5 client (Engine.IO v4, WebSocket transport only, one namespace)
  // ---------------------------------------------------------------------------------

  /**
   * The subset of Socket.IO the widget needs: connect to one namespace with an auth
   * payload, emit events, emit with acknowledgement, receive events, and reconnect
   * forever with exponential backoff and jitter.
   *
   * WebSocket only (no long-polling fallback): every browser the widget supports has
   * it, and it keeps the client small. In Engine.IO v4 the SERVER sends pings; a
   * connection that stays silent for pingInterval + pingTimeout is treated as dead,
   * because a half-open TCP connection may never fire `close`.
   */
  class SocketIOClient {
    /**
     * @param {string} url       ws(s)://host/socket.io/?EIO=4&transport=websocket
     * @param {() => object} auth called on every (re)connect, so the payload is current
     * @param {object} listener  {onEvent(name, data), onState(state)}
     */
    constructor(url, auth, listener) {
      this.url = url;
      this.auth = auth;
      this.listener = listener;
      this.ws = null;
      this.connected = false;
      this.stopped = true;
      this.attempts = 0;
      this.nextAckId = 0;
      this.acks = new Map();
      this.timers = { connect: 0, heartbeat: 0, retry: 0 };
      this.onOnline = () => this.reconnectNow();
    }

    start() {
      if (!this.stopped) return;
      this.stopped = false;
      window.addEventListener('online', this.onOnline);
      this.open();
    }

    stop() {
      this.stopped = true;
      window.removeEventListener('online', this.onOnline);
      clearTimeout(this.timers.retry);
      this.drop('client stop');
    }

    /** Skip the rest of a backoff wait, e.g. when the browser says it is back online. */
    reconnectNow() {
      if (this.stopped || this.ws) return;
      clearTimeout(this.timers.retry);
      this.open();
    }

    /** Fire-and-forget event; returns false when not connected (nothing is queued). */
    emit(event, data) {
      if (!this.connected) return false;
      this.send(`42${NAMESPACE},${JSON.stringify(eventArgs(event, data))}`);
      return true;
    }

    /**
     * Emit and wait for the server's acknowledgement. Rejects when not connected or
     * when the connection drops first: the caller decides whether to try again.
     * There is deliberately no timeout: the hub may ack only after committing the
     * message, and a dead connection is already caught by the heartbeat.
     */
    request(event, data) {
      return new Promise((resolve, reject) => {
        if (!this.connected) {
          reject(new Error('not connected'));
          return;
        }
        const id = this.nextAckId++;
        this.acks.set(id, { resolve, reject });
        this.send(`42${NAMESPACE},${id}${JSON.stringify(eventArgs(event, data))}`);
      });
    }

    open() {
      this.listener.onState(this.attempts === 0 ? 'connecting' : 'reconnecting');
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch {
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      ws.onmessage = (event) => this.onFrame(event.data);
      ws.onclose = () => this.drop('transport close');
      this.timers.connect = setTimeout(() => this.drop('connect timeout'), CONNECT_TIMEOUT_MS);
    }

    /** Every way a connection ends comes through here, exactly once per socket. */
    drop(reason) {
      const ws = this.ws;
      clearTimeout(this.timers.connect);
      clearTimeout(this.timers.heartbeat);
      if (!ws) return;
      this.ws = null;
      ws.onmessage = null;
      ws.onclose = null;
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      else if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);

      const pending = [...this.acks.values()];
      this.acks.clear();
      const wasConnected = this.connected;
      this.connected = false;
      for (const { reject } of pending) reject(new Error(reason));
      if (wasConnected) this.listener.onEvent('disconnect', reason);
      if (!this.stopped) this.scheduleReconnect();
    }

    scheduleReconnect() {
      // Exponential backoff with "equal jitter": half the delay is fixed, half random,
      // so a hub restart is not followed by every browser reconnecting at once.
      const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.attempts);
      const delay = ceiling / 2 + Math.random() * (ceiling / 2);
      this.attempts += 1;
      this.listener.onState('reconnecting');
      clearTimeout(this.timers.retry);
      this.timers.retry = setTimeout(() => this.open(), delay);
    }

    send(frame) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
    }

    armHeartbeat(windowMs) {
      clearTimeout(this.timers.heartbeat);
      this.timers.heartbeat = setTimeout(() => this.drop('ping timeout'), windowMs);
    }

    /** One Engine.IO packet per WebSocket frame (v4 only batches on long-polling). */
    onFrame(frame) {
      if (typeof frame !== 'string') return; // binary attachments: unused by /chat
      try {
        switch (frame[0]) {
          case '0': { // open: the handshake; now join the namespace
            const handshake = JSON.parse(frame.slice(1));
            this.heartbeatMs = handshake.pingInterval + handshake.pingTimeout;
            this.armHeartbeat(this.heartbeatMs);
            this.send(`40${NAMESPACE},${JSON.stringify(this.auth())}`);
            break;
          }
          case '2': // ping
            this.send('3');
            this.armHeartbeat(this.heartbeatMs);
            break;
          case '1': // close
            this.drop('server close');
            break;
          case '4': // message: carries one Socket.IO packet
            this.onPacket(parsePacket(frame.slice(1)));
            break;
          default: // '6' noop, upgrades: nothing to do over a bare WebSocket
        }
      } catch {
        // A frame we cannot parse means we no longer agree with the server on the
        // protocol state; start over rather than guess.
        this.drop('protocol error');
      }
    }

    onPacket(packet) {
      if (packet.nsp !== NAMESPACE) return;
      switch (packet.type) {
        case 0: // CONNECT: joined the namespace
          clearTimeout(this.timers.connect);
          this.connected = true;
          this.attempts = 0;
          this.listener.onState('connected');
          this.listener.onEvent('connect', packet.data);
          break;
        case 1: // DISCONNECT from the server: reconnect after backoff like any drop
          this.drop('server disconnect');
          break;
        case 2: { // EVENT
          const [name, data] = packet.data;
          if (packet.id !== null) this.send(`43${NAMESPACE},${packet.id}[]`);
          this.listener.onEvent(name, data);
          break;
        }
        case 3: { // ACK
          const waiter = this.acks.get(packet.id);
          this.acks.delete(packet.id);
          if (waiter) waiter.resolve(packet.data[0]);
          break;
        }
        case 4: // CONNECT_ERROR (refused, e.g. overloaded): retry after backoff like a drop
          this.drop('connect error');
          break;
        default: // binary packets: unused by /chat
      }
    }
  }

  /** `history` has no payload: send ["history"], not ["history", null]. */
  function eventArgs(event, data) {
    return data === undefined ? [event] : [event, data];
  }

  /** Socket.IO packet: <type>[<namespace>,][<ack id>][<JSON data>]. */
  function parsePacket(text) {
    let rest = text.slice(1);
    let nsp = '/';
    if (rest.startsWith('/')) {
      const comma = rest.indexOf(',');
      nsp = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? '' : rest.slice(comma + 1);
      nsp = nsp.split('?')[0];
    }
    const ackDigits = /^\d+/.exec(rest);
    const id = ackDigits ? Number(ackDigits[0]) : null;
    if (ackDigits) rest = rest.slice(ackDigits[0].length);
    return { type: Number(text[0]), nsp, id, data: rest ? JSON.parse(rest) : undefined };
  }

  // ---------------------------------------------------------------------------------
  // View: the launcher and the chat panel, inside a shadow root
  // ---------------------------------------------------------------------------------

  class ChatView {
    /**
     * @param {string} cssUrl the hub's widget.css, loaded into the shadow root so the
     *   firm's CSP needs only the hub origin in style-src, not 'unsafe-inline'
     * @param {object} handlers {onToggle(open), onSend(text), onRetry(clientId), onTyping()}
     */
    constructor(cssUrl, handlers, options) {
      this.handlers = handlers;
      this.strings = STRINGS[options.language];
      this.title = options.title;
      this.greeting = options.greeting;
      this.isOpen = false;
      this.entries = [];
      this.nodes = new Map(); // entry -> its <li>
      this.typingTimer = 0;
      this.unread = 0;
      // Last state shown, re-rendered when the language changes.
      this.session = null;
      this.connectionState = null;
      this.queueState = null;

      this.host = document.createElement(HOST_TAG);
      // Inline !important beats any rule the host page may have for our tag.
      const hostStyle = { display: 'block', position: 'static', margin: '0', padding: '0',
        border: '0', width: '0', height: '0', visibility: 'hidden' };
      for (const [prop, value] of Object.entries(hostStyle)) {
        this.host.style.setProperty(prop, value, 'important');
      }
      if (options.accentColor && CSS.supports('color', options.accentColor)) {
        this.host.style.setProperty('--sh-accent', options.accentColor);
      }
      const shadow = this.host.attachShadow({ mode: 'open' });
      const stylesheet = h('link', { rel: 'stylesheet', href: cssUrl });
      // Stay invisible until styled so the page never shows a flash of raw markup.
      const reveal = () => this.host.style.setProperty('visibility', 'visible', 'important');
      stylesheet.addEventListener('load', reveal);
      stylesheet.addEventListener('error', reveal);
      this.build();
      this.followEnd();
      shadow.append(stylesheet, this.root);
      document.body.append(this.host);
      this.applyStrings();
    }

    build() {
      this.launcherLabel = h('span', { class: 'sh-launcher__label' });
      this.unreadBadge = h('span', { class: 'sh-launcher__unread', hidden: true });
      this.launcher = h('button', { class: 'sh-launcher', type: 'button',
        'aria-expanded': 'false', 'aria-controls': 'sh-panel' },
      icon('chat'), icon('close'), this.launcherLabel, this.unreadBadge);

      this.titleNode = h('h2', { class: 'sh-header__title', id: 'sh-title' });
      this.subtitleNode = h('p', { class: 'sh-header__subtitle' });
      this.verifiedText = h('span', {});
      this.verifiedBadge = h('p', { class: 'sh-verified', hidden: true }, icon('shield'), this.verifiedText);
      this.closeButton = h('button', { class: 'sh-close', type: 'button' }, icon('close'));
      const header = h('header', { class: 'sh-header' },
        h('div', { class: 'sh-header__avatar' }, icon('agent')),
        h('div', { class: 'sh-header__text' }, this.titleNode, this.subtitleNode, this.verifiedBadge),
        this.closeButton);

      this.statusBar = h('p', { class: 'sh-status', role: 'status', hidden: true });
      this.queueBanner = h('p', { class: 'sh-queue', role: 'status', hidden: true });
      this.greetingNode = h('p', { class: 'sh-greeting' });
      this.list = h('ol', { class: 'sh-messages', role: 'log', 'aria-live': 'polite' });
      this.typingText = h('span', { class: 'sh-visually-hidden' });
      this.typingNode = h('div', { class: 'sh-typing', role: 'status', hidden: true },
        h('span', { class: 'sh-typing__dots', 'aria-hidden': 'true' },
          h('span', {}), h('span', {}), h('span', {})),
        this.typingText);
      this.scroller = h('div', { class: 'sh-scroll' }, this.greetingNode, this.list, this.typingNode);

      this.input = h('textarea', { class: 'sh-input', rows: '1', id: 'sh-input',
        autocomplete: 'off', 'aria-describedby': 'sh-hint' });
      this.sendButton = h('button', { class: 'sh-send', type: 'submit' }, icon('send'));
      this.hint = h('p', { class: 'sh-visually-hidden', id: 'sh-hint' });
      this.form = h('form', { class: 'sh-composer' }, this.input, this.sendButton, this.hint);
      this.privacy = h('p', { class: 'sh-privacy' });

      this.panel = h('section', { class: 'sh-panel', id: 'sh-panel', role: 'dialog',
        'aria-labelledby': 'sh-title', hidden: true },
      header, this.statusBar, this.queueBanner, this.scroller, this.form, this.privacy);
      this.root = h('div', { class: 'sh-root' }, this.panel, this.launcher);

      this.launcher.addEventListener('click', () => this.handlers.onToggle(!this.isOpen));
      this.closeButton.addEventListener('click', () => this.handlers.onToggle(false));
      this.panel.addEventListener('keydown', (event) => {
        if (event.key === 'Escape') {
          event.stopPropagation();
          this.handlers.onToggle(false);
        }
      });
      this.form.addEventListener('submit', (event) => {
        event.preventDefault();
        this.submit();
      });
      this.input.addEventListener('keydown', (event) => {
        // Enter while an IME is composing (pinyin!) picks a candidate, it must not send.
        if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
        event.preventDefault();
        this.submit();
      });
      this.input.addEventListener('input', () => {
        this.fitInput();
        this.handlers.onTyping();
      });
    }

    applyStrings() {
      const s = this.strings;
      this.root.setAttribute('lang', s.locale);
      this.launcherLabel.textContent = s.launcher;
      this.titleNode.textContent = this.title || s.title;
      this.subtitleNode.textContent = s.subtitle;
      this.closeButton.setAttribute('aria-label', s.closeChat);
      this.greetingNode.textContent = this.greeting || s.greeting;
      this.list.setAttribute('aria-label', s.log);
      this.input.setAttribute('aria-label', s.inputLabel);
      this.input.setAttribute('placeholder', s.placeholder);
      this.sendButton.setAttribute('aria-label', s.send);
      this.hint.textContent = s.hint;
      this.privacy.textContent = s.privacy;
      this.setOpen(this.isOpen, false);
      this.setUnread(this.unread);
    }

    setLanguage(language) {
      if (STRINGS[language] === this.strings) return;
      this.strings = STRINGS[language];
      this.applyStrings();
      this.render(this.entries);
      if (this.session) this.setSession(this.session);
      if (this.connectionState) this.setConnection(this.connectionState);
      if (this.queueState) this.setQueue(this.queueState);
    }

    destroy() {
      clearTimeout(this.typingTimer);
      this.resizeObserver.disconnect();
      this.host.remove();
    }

    submit() {
      const text = this.input.value;
      if (!text.trim()) return;
      this.input.value = '';
      this.fitInput();
      this.handlers.onSend(text);
    }

    /** Grow the message box with its text (up to the CSS max-height), shrink it back after sending. */
    fitInput() {
      const borders = this.input.offsetHeight - this.input.clientHeight;
      this.input.style.height = 'auto';
      this.input.style.height = `${this.input.scrollHeight + borders}px`;
    }

    setOpen(open, moveFocus) {
      const wasOpen = this.isOpen;
      this.isOpen = open;
      this.panel.hidden = !open;
      this.root.classList.toggle('sh-root--open', open);
      this.launcher.setAttribute('aria-expanded', String(open));
      this.launcher.setAttribute('aria-label', open ? this.strings.closeChat : this.strings.openChat);
      if (open) this.setUnread(0);
      if (!moveFocus || open === wasOpen) return;
      if (open) {
        this.pinToEnd();
        this.input.focus();
      } else {
        this.launcher.focus();
      }
    }

    setUnread(count) {
      this.unread = count;
      this.unreadBadge.hidden = count === 0;
      this.unreadBadge.textContent = count > 9 ? '9+' : String(count);
      if (count) this.unreadBadge.setAttribute('aria-label', this.strings.unread(count));
    }

    setConnection(state) {
      this.connectionState = state;
      const text = { connecting: this.strings.connecting, reconnecting: this.strings.reconnecting }[state];
      this.statusBar.hidden = !text;
      this.statusBar.textContent = text || '';
    }

    setSession(session) {
      this.session = session;
      this.verifiedBadge.hidden = !session.verified;
      this.verifiedText.textContent = session.verified && session.customer_name
        ? `${this.strings.verified} · ${session.customer_name}` : this.strings.verified;
    }

    setQueue(state) {
      this.queueState = state;
      this.queueBanner.hidden = !state.waiting;
      this.queueBanner.textContent = state.waiting ? this.strings.queue(state.position) : '';
    }

    setTyping(author, typing) {
      clearTimeout(this.typingTimer);
      this.typingNode.hidden = !typing;
      if (!typing) return;
      this.typingText.textContent = this.strings.typing[author] || this.strings.typing.bot;
      this.typingTimer = setTimeout(() => this.setTyping(author, false), TYPING_STALE_MS);
    }

    /** Replace the whole transcript (after `history`). */
    render(entries) {
      this.entries = entries.slice();
      this.nodes.clear();
      this.list.replaceChildren(...entries.map((entry, i) => this.renderEntry(entry, entries[i - 1])));
      this.greetingNode.hidden = entries.length > 0;
    }

    append(entry) {
      const previous = this.entries[this.entries.length - 1];
      this.entries.push(entry);
      this.list.append(this.renderEntry(entry, previous));
      this.greetingNode.hidden = true;
      if (entry.author === 'customer') this.pinToEnd();
    }

    /** Re-render one entry in place (its delivery status changed). */
    update(entry) {
      const old = this.nodes.get(entry);
      if (!old) return;
      const index = this.entries.indexOf(entry);
      old.replaceWith(this.renderEntry(entry, this.entries[index - 1]));
    }

    renderEntry(entry, previous) {
      const s = this.strings;
      const item = h('li', { class: `sh-msg sh-msg--${entry.author}` });
      const firstOfRun = !previous || previous.author !== entry.author;
      // Screen readers always hear who spoke; sighted users see it once per run.
      item.append(h('span', { class: firstOfRun && entry.author !== 'customer' && entry.author !== 'system'
        ? 'sh-msg__author' : 'sh-visually-hidden' }, s.authors[entry.author] || s.authors.system));
      item.append(h('p', { class: 'sh-msg__bubble' }, entry.text));

      if (entry.sources && entry.sources.length) {
        const titles = [];
        entry.sources.forEach((source, i) => {
          if (i) titles.push(s.listSeparator);
          titles.push(h('cite', { class: 'sh-msg__source' }, String(source.title ?? source.id ?? '')));
        });
        item.append(h('p', { class: 'sh-msg__sources' }, s.sources, ...titles));
      }

      const meta = h('p', { class: 'sh-msg__meta' });
      const time = formatTime(entry.created_at, s.locale);
      if (time) meta.append(h('time', { datetime: entry.created_at }, time));
      if (entry.status) {
        const reason = entry.status === 'failed' && entry.error
          ? s.errors[entry.error.code] || entry.error.message : '';
        meta.append(h('span', { class: `sh-msg__status sh-msg__status--${entry.status}` },
          s[entry.status], reason ? ` (${reason})` : null));
        if (entry.status === 'failed') {
          const retry = h('button', { class: 'sh-msg__retry', type: 'button' }, s.retry);
          retry.addEventListener('click', () => this.handlers.onRetry(entry.client_id));
          meta.append(retry);
        }
      }
      if (meta.childNodes.length) item.append(meta);
      this.nodes.set(entry, item);
      return item;
    }

    /**
     * Keep the newest message in view while the panel's layout shifts (new messages,
     * the queue banner, the status line, typing dots, a growing message box), unless
     * the customer has scrolled up to read something.
     */
    followEnd() {
      this.pinned = true;
      this.scroller.addEventListener('scroll', () => {
        const el = this.scroller;
        this.pinned = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
      }, { passive: true });
      this.resizeObserver = new ResizeObserver(() => {
        if (this.pinned) this.scrollToEnd();
      });
      for (const node of [this.scroller, this.list, this.typingNode]) this.resizeObserver.observe(node);
    }

    pinToEnd() {
      this.pinned = true;
      this.scrollToEnd();
    }

    scrollToEnd() {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    }
  }

  function formatTime(iso, locale) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    return date.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
  }

  // ---------------------------------------------------------------------------------
  // Controller: the conversation, the outbox, and the wiring between socket and view
  // ---------------------------------------------------------------------------------

  /**
   * Owns the transcript and the outbox. Delivery guarantee: a message the customer
   * typed stays in the outbox (persisted, so it also survives a reload) until the hub
   * acknowledges it. After every (re)connect the outbox is re-sent in order with the
   * same client_id — the hub stores each client_id once — and only then is `history`
   * fetched and taken as the truth, so nothing is lost or shown twice.
   */
  class ChatWidget {
    constructor(config) {
      this.config = config;
      this.store = new Store(`servicehub:${config.hubOrigin}:`);
      this.entries = [];
      this.byKey = new Map();
      this.generation = 0;
      this.pumping = null;
      this.typingSent = false;
      this.typingIdle = 0;

      this.prepareVisitor();
      this.outbox = this.store.get('outbox') || [];
      this.language = normaliseLanguage(config.language) || browserLanguage();

      const wsOrigin = config.hubOrigin.replace(/^http/, 'ws');
      this.client = new SocketIOClient(`${wsOrigin}/socket.io/?EIO=4&transport=websocket`,
        () => this.authPayload(),
        {
          onEvent: (name, data) => this.onEvent(name, data),
          onState: (state) => this.view.setConnection(state),
        });

      this.view = new ChatView(`${config.hubOrigin}/widget.css`, {
        onToggle: (open) => this.setOpen(open, true),
        onSend: (text) => this.send(text),
        onRetry: (clientId) => this.retry(clientId),
        onTyping: () => this.noteTyping(),
      }, { language: this.language, title: config.title, greeting: config.greeting,
        accentColor: config.accentColor });

      for (const message of this.outbox) this.addEntry(this.outboxEntry(message));
      this.view.render(this.entries);

      // Connect straight away only if this browser already has a conversation (so
      // agent replies and unread counts arrive); otherwise wait until the customer
      // opens the chat, which spares the hub a socket per page view.
      if (config.open) this.setOpen(true, false);
      else if (this.store.get('active') || this.outbox.length) this.client.start();
    }

    /**
     * Start a fresh local visitor when a verified customer has left this browser
     * (logged out, or a different customer logged in), so the next person never sees
     * their conversation. An anonymous visitor id is kept through a login; whether the
     * anonymous thread joins the customer's is the hub's decision.
     */
    prepareVisitor() {
      const last = this.store.get('identity');
      const token = this.config.token || null;
      const subject = token ? tokenSubject(token) : null;
      const otherCustomer = subject !== null && last && last.subject !== null && last.subject !== subject;
      if (last && last.verified && (!token || otherCustomer)) forgetVisitor(this.store);
      this.subject = subject;
      this.visitorId = this.store.get('visitor_id');
      if (!this.visitorId) {
        this.visitorId = randomId('v_');
        this.store.set('visitor_id', this.visitorId);
      }
    }

    authPayload() {
      const auth = { visitor_id: this.visitorId, language: this.language };
      if (this.config.token) auth.token = this.config.token;
      return auth;
    }

    destroy() {
      this.client.stop();
      clearTimeout(this.typingIdle);
      this.view.destroy();
    }

    setOpen(open, moveFocus) {
      if (open) this.client.start();
      this.view.setOpen(open, moveFocus);
    }

    // --- socket events ---------------------------------------------------------------

    onEvent(name, data) {
      switch (name) {
        case 'connect':
          this.resync();
          break;
        case 'disconnect':
          this.typingSent = false;
          this.view.setTyping('bot', false);
          break;
        case 'session':
          this.onSession(data || {});
          break;
        case 'message':
          if (data && data.id !== undefined) this.onServerMessage(data);
          break;
        case 'typing':
          if (data) this.view.setTyping(data.author, Boolean(data.typing));
          break;
        default: // events from newer hubs are ignored, not errors
      }
    }

    onSession(session) {
      this.store.set('identity', { verified: Boolean(session.verified), subject: this.subject });
      const language = normaliseLanguage(session.language);
      if (language && language !== this.language) {
        this.language = language;
        this.view.setLanguage(language);
      }
      this.view.setSession(session);
    }

    onServerMessage(message) {
      const key = `id:${message.id}`;
      if (this.byKey.has(key)) return;
      const entry = serverEntry(message);
      this.addEntry(entry);
      this.view.append(entry);
      this.view.setTyping(entry.author, false);
      this.view.setQueue(queueState(this.entries));
      this.store.set('active', true);
      if (!this.view.isOpen && entry.author !== 'customer') this.view.setUnread(this.view.unread + 1);
    }

    /** After (re)connecting: deliver the outbox in order, then take `history` as truth. */
    async resync() {
      const generation = ++this.generation;
      await this.pump();
      if (generation !== this.generation || !this.client.connected) return;
      let history;
      try {
        history = await this.client.request('history');
      } catch {
        return; // dropped again; the next connect resyncs
      }
      if (generation === this.generation && Array.isArray(history)) this.applyHistory(history);
    }

    applyHistory(history) {
      const stored = history.map(serverEntry);
      const storedIds = new Set(stored.map((e) => e.key));
      const storedClientIds = new Set(stored.map((e) => e.client_id).filter(Boolean));

      // Stored but never acknowledged (the ack was lost with the connection).
      this.setOutbox(this.outbox.filter((m) => !storedClientIds.has(m.client_id)));
      // Messages that arrived live after the hub read the history, and our own
      // messages still waiting for delivery, come after the stored ones.
      const later = this.entries.filter((e) => e.key.startsWith('id:') && !storedIds.has(e.key));
      const waiting = this.outbox.map((m) => this.byKey.get(`client:${m.client_id}`) || this.outboxEntry(m));

      this.entries = [];
      this.byKey.clear();
      for (const entry of [...stored, ...later, ...waiting]) this.addEntry(entry);
      this.view.render(this.entries);
      this.view.setQueue(queueState(this.entries));
      if (this.entries.length) this.store.set('active', true);
    }

    // --- sending ---------------------------------------------------------------------

    send(rawText) {
      // The hub stores the text trimmed; show exactly what it will show after a reload.
      const text = rawText.trim();
      if (!text) return;
      const message = {
        client_id: randomId('m_'), text, created_at: new Date().toISOString(), state: 'sending',
      };
      this.setOutbox([...this.outbox, message]);
      const entry = this.outboxEntry(message);
      this.addEntry(entry);
      this.view.append(entry);
      this.stopTyping();
      this.client.start();
      this.pump();
    }

    retry(clientId) {
      const message = this.outbox.find((m) => m.client_id === clientId);
      if (!message) return;
      message.state = 'sending';
      delete message.error;
      this.setOutbox(this.outbox);
      this.refresh(message);
      this.client.start();
      this.pump();
    }

    /**
     * Deliver waiting messages one at a time. Serial on purpose: the hub may handle
     * events concurrently, and two messages in flight could be stored out of order.
     * Returns the running pump's promise so resync() can wait for it.
     */
    pump() {
      if (!this.pumping) this.pumping = this.drainOutbox().finally(() => { this.pumping = null; });
      return this.pumping;
    }

    async drainOutbox() {
      try {
        let next;
        while (this.client.connected && (next = this.outbox.find((m) => m.state === 'sending'))) {
          await this.deliver(next);
        }
      } catch {
        // disconnected mid-delivery: the message stays in the outbox for the next connect
      }
    }

    async deliver(message) {
      const ack = await this.client.request('message', { text: message.text, client_id: message.client_id });
      if (ack && ack.id !== undefined && !ack.error) {
        this.setOutbox(this.outbox.filter((m) => m !== message));
        const entry = this.byKey.get(`client:${message.client_id}`);
        if (entry) {
          this.byKey.delete(entry.key);
          entry.key = `id:${ack.id}`;
          entry.id = ack.id;
          entry.status = 'sent';
          this.byKey.set(entry.key, entry);
          this.view.update(entry);
        }
        this.store.set('active', true);
        return;
      }
      // Refused (too long, too fast...): keep it, marked failed, so the customer can retry or copy it.
      const error = (ack && ack.error) || {};
      message.state = 'failed';
      message.error = { code: String(error.code || ''), message: String(error.message || '') };
      this.setOutbox(this.outbox);
      this.refresh(message);
    }

    noteTyping() {
      if (!this.typingSent) this.typingSent = this.client.emit('typing', { typing: true });
      clearTimeout(this.typingIdle);
      this.typingIdle = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
    }

    stopTyping() {
      clearTimeout(this.typingIdle);
      if (this.typingSent) this.client.emit('typing', { typing: false });
      this.typingSent = false;
    }

    // --- bookkeeping -----------------------------------------------------------------

    setOutbox(outbox) {
      this.outbox = outbox;
      if (outbox.length) this.store.set('outbox', outbox);
      else this.store.remove('outbox');
    }

    outboxEntry(message) {
      return { key: `client:${message.client_id}`, id: null, client_id: message.client_id, author: 'customer',
        text: message.text, sources: [], created_at: message.created_at,
        status: message.state === 'failed' ? 'failed' : 'sending', error: message.error || null };
    }

    refresh(message) {
      const entry = this.byKey.get(`client:${message.client_id}`);
      if (!entry) return;
      entry.status = message.state === 'failed' ? 'failed' : 'sending';
      entry.error = message.error || null;
      this.view.update(entry);
    }

    addEntry(entry) {
      this.entries.push(entry);
      this.byKey.set(entry.key, entry);
    }
  }

  function serverEntry(message) {
    return {
      key: `id:${message.id}`,
      id: message.id,
      client_id: message.client_id || null,
      author: ['customer', 'bot', 'agent', 'system'].includes(message.author) ? message.author : 'system',
      text: String(message.text === undefined || message.text === null ? '' : message.text),
      sources: Array.isArray(message.sources) ? message.sources : [],
      handoff: Boolean(message.handoff),
      queue_position: Number.isInteger(message.queue_position) ? message.queue_position : null,
      created_at: message.created_at,
      status: message.author === 'customer' ? 'sent' : null,
    };
  }

  /** Waiting for an agent since the last handoff, until an agent speaks. */
  function queueState(entries) {
    const state = { waiting: false, position: null };
    for (const entry of entries) {
      if (entry.handoff) {
        state.waiting = true;
        state.position = entry.queue_position;
      } else if (entry.author === 'agent') {
        state.waiting = false;
      } else if (state.waiting && entry.queue_position !== null && entry.queue_position !== undefined) {
        state.position = entry.queue_position;
      }
    }
    return state;
  }

  function forgetVisitor(store) {
    for (const key of ['visitor_id', 'outbox', 'identity', 'active']) store.remove(key);
  }

  // ---------------------------------------------------------------------------------
  // Configuration and the public API
  // ---------------------------------------------------------------------------------

  const script = document.currentScript || document.querySelector('script[src*="widget.js"]');

  /** data-* attributes on the script tag, then window.ServiceHubConfig on top. */
  function initialConfig() {
    const data = (script && script.dataset) || {};
    const fromTag = {};
    for (const name of ['token', 'language', 'title', 'greeting', 'hubUrl', 'accentColor']) {
      if (data[name]) fromTag[name] = data[name];
    }
    if (data.open) fromTag.open = data.open === 'true';
    if (data.autoInit) fromTag.autoInit = data.autoInit !== 'false';
    return { autoInit: true, open: false, ...fromTag, ...(window.ServiceHubConfig || {}) };
  }

  function hubOrigin(config) {
    return new URL(config.hubUrl || (script && script.src) || location.href, location.href).origin;
  }

  let config = initialConfig();
  let widget = null;

  function start() {
    const wasOpen = widget ? widget.view.isOpen : false;
    if (widget) widget.destroy();
    widget = new ChatWidget({ ...config, open: config.open || wasOpen, hubOrigin: hubOrigin(config) });
  }

  function whenReady(fn) {
    if (document.body) fn();
    else document.addEventListener('DOMContentLoaded', fn, { once: true });
  }

  window.ServiceHub = Object.freeze({
    version: VERSION,
    /** (Re)start the widget; options are merged over the current configuration. */
    init(options) {
      config = { ...config, ...(options || {}) };
      whenReady(start);
    },
    /** Forget this browser's conversation and continue anonymously. */
    logout() {
      config = { ...config, token: null };
      forgetVisitor(new Store(`servicehub:${hubOrigin(config)}:`));
      whenReady(start);
    },
    open() {
      if (widget) widget.setOpen(true, true);
    },
    close() {
      if (widget) widget.setOpen(false, true);
    },
    /** Open the chat and send `text` as the customer (e.g. from an FAQ link). */
    ask(text) {
      if (!widget || !String(text || '').trim()) return;
      widget.setOpen(true, true);
      widget.send(String(text));
    },
    destroy() {
      if (widget) widget.destroy();
      widget = null;
    },
  });

  if (config.autoInit) whenReady(start);
  window.dispatchEvent(new CustomEvent('servicehub:ready'));
})();
