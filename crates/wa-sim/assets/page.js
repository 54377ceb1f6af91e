// wa-sim page script: reproduces the part of WhatsApp Web's internal surface that automation
// reads (module names, members, events and their order), as described in crates/wa-sim/README.md.
// Written from public facts about WhatsApp Web (docs/whatsapp-bridge.md, crates/wa-sim/README.md); no third-party code.
//
// Life of a page: the script opens its event stream to the server, waits `load_delay_ms`, defines
// `window.Debug` and `window.require`, then either restores a stored login (CONNECTED, no QR) or
// shows QR codes (UNPAIRED) until the server pushes a scan, a logout or a conflict.
(function () {
  'use strict';

  const CONFIG = window.__SIM_CONFIG;
  const QR_PREFIX = 'https://wa.me/settings/linked_devices#';
  const QR_LABEL = 'Scan this QR code to link a device!';
  const STORAGE_LOGIN = 'wa-sim:login';
  const STORAGE_KEYS = 'wa-sim:keys';
  // Pause between the loading steps after a scan (PAIRING, each progress step).
  const STEP_MS = 40;
  const PROGRESS_STEPS = [10, 35, 60, 85, 100];

  // ---------------------------------------------------------------- helpers

  function randomBytes(n) {
    const bytes = new Uint8Array(n);
    crypto.getRandomValues(bytes);
    return bytes;
  }

  function toB64(bytes) {
    let binary = '';
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary);
  }

  function fromB64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function delay(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function postJson(path, body) {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, json };
  }

  function readJson(key) {
    try {
      const text = localStorage.getItem(key);
      return text ? JSON.parse(text) : null;
    } catch (e) {
      return null;
    }
  }

  // ---------------------------------------------------------------- Backbone-like events

  class Evented {
    #listeners = new Map();

    on(event, callback, context) {
      if (typeof callback !== 'function') return this;
      if (!this.#listeners.has(event)) this.#listeners.set(event, []);
      this.#listeners.get(event).push({ callback, context });
      return this;
    }

    once(event, callback, context) {
      const self = this;
      const wrapper = function () {
        self.off(event, wrapper);
        return callback.apply(this, arguments);
      };
      wrapper.original = callback;
      return this.on(event, wrapper, context);
    }

    off(event, callback) {
      if (event === undefined) {
        this.#listeners.clear();
      } else if (callback === undefined) {
        this.#listeners.delete(event);
      } else {
        const kept = (this.#listeners.get(event) || []).filter(
          (l) => l.callback !== callback && l.callback.original !== callback,
        );
        this.#listeners.set(event, kept);
      }
      return this;
    }

    trigger(event, ...args) {
      for (const { callback, context } of (this.#listeners.get(event) || []).slice()) {
        try {
          callback.apply(context || this, args);
        } catch (e) {
          console.error('[wa-sim] listener of ' + event + ' threw', e);
        }
      }
      return this;
    }
  }

  // A model: attributes are plain properties; `set` changes one and fires `change:<attr>`
  // with `(model, newValue)`, after the new value is readable. A model in a collection fires it on
  // the collection too (as Backbone does: `Msg.on('change:ack', (msg, ack) => ...)`).
  class Model extends Evented {
    set(attr, value) {
      if (this[attr] === value) return this;
      this[attr] = value;
      this.trigger('change:' + attr, this, value);
      if (this.collection) this.collection.trigger('change:' + attr, this, value);
      return this;
    }
  }

  class Collection extends Evented {
    #models = new Map();

    static keyOf(id) {
      if (typeof id === 'string') return id;
      return id && (id._serialized || String(id));
    }

    get(id) {
      return this.#models.get(Collection.keyOf(id));
    }

    add(model) {
      if (model instanceof Model) model.collection = this;
      this.#models.set(Collection.keyOf(model.id), model);
      this.trigger('add', model);
      return model;
    }

    getModelsArray() {
      return Array.from(this.#models.values());
    }
  }

  // ---------------------------------------------------------------- persisted profile data

  // Key material: generated once per browser profile, kept in the origin's localStorage.
  function loadOrCreateKeys() {
    const stored = readJson(STORAGE_KEYS);
    if (stored && stored.noise && stored.identity && stored.adv) return stored;
    const keys = {
      noise: toB64(randomBytes(32)),
      identity: toB64(randomBytes(32)),
      adv: toB64(randomBytes(32)),
      registrationId: 1 + Math.floor(Math.random() * 16380),
    };
    localStorage.setItem(STORAGE_KEYS, JSON.stringify(keys));
    return keys;
  }

  let keys = loadOrCreateKeys();
  // The login the phone granted: `{token, phone}`, or null.
  let login = readJson(STORAGE_LOGIN);

  function saveLogin(value) {
    login = value;
    localStorage.setItem(STORAGE_LOGIN, JSON.stringify(value));
  }

  function wipeProfile() {
    login = null;
    localStorage.removeItem(STORAGE_LOGIN);
    localStorage.removeItem(STORAGE_KEYS);
  }

  // ---------------------------------------------------------------- the modules

  class Wid {
    constructor(user, server) {
      this.user = user;
      this.server = server;
      this._serialized = user + '@' + server;
    }
    isLid() {
      return this.server === 'lid';
    }
    isGroup() {
      return this.server === 'g.us';
    }
    isUser() {
      return this.server === 'c.us' || this.server === 'lid';
    }
    equals(other) {
      return !!other && Collection.keyOf(other) === this._serialized;
    }
    toString() {
      return this._serialized;
    }
    toJid() {
      return this._serialized;
    }
  }

  function createWid(id) {
    const text = Collection.keyOf(id);
    if (typeof text !== 'string' || text.length === 0) throw new Error('createWid: invalid wid ' + id);
    const at = text.indexOf('@');
    const user = at < 0 ? text : text.slice(0, at);
    const server = at < 0 ? 'c.us' : text.slice(at + 1);
    if (!user || !server) throw new Error('createWid: invalid wid ' + text);
    return new Wid(user, server);
  }

  const Socket = new Model();
  Socket.state = 'OPENING';
  Socket.stream = 'DISCONNECTED';
  Socket.hasSynced = false;

  const Conn = new Model();
  Conn.ref = null;
  Conn.platform = 'web';
  Conn.serialize = function () {
    return { ref: Conn.ref, platform: Conn.platform, connected: Socket.state === 'CONNECTED', wid: me() };
  };

  const Stream = new Model();
  Stream.mode = 'OFFLINE';
  Stream.info = 'OPENING';
  Stream.displayInfo = 'OPENING';

  const Cmd = new Evented();
  Cmd.isMainLoaded = false;

  let progress = 0;
  const OfflineMessageHandler = {
    getOfflineDeliveryProgress: () => progress,
  };

  const Chat = new Collection();
  const Msg = new Collection();

  function me() {
    return login ? new Wid(login.phone, 'c.us') : null;
  }

  // The simulator's LID of a phone number: '20' + the digits reversed (documented in the README, so
  // tests can name the LID a message must come from). Real LIDs are unrelated numbers.
  const lidToPhone = new Map();
  function lidOf(digits) {
    const lid = '20' + String(digits).split('').reverse().join('');
    lidToPhone.set(lid, String(digits));
    return lid;
  }

  function meLid() {
    return login ? new Wid(lidOf(login.phone), 'lid') : null;
  }

  // ---------------------------------------------------------------- pairing code (link with a number)

  const PAIRING_ALPHABET = 'ABCDEFGHJKLMNPQRSTVWXYZ23456789';
  // `{code, phone}` of the code this page shows, or null.
  let pairing = null;
  let pairingType = null;

  function newPairingCode() {
    return Array.from(randomBytes(8), (b) => PAIRING_ALPHABET[b % PAIRING_ALPHABET.length]).join('');
  }

  class MsgKey {
    constructor({ from, to, id, participant, selfDir }) {
      this.fromMe = selfDir === 'out';
      this.remote = this.fromMe ? to : from;
      this.id = id;
      this.participant = participant;
      this._serialized = String(this.fromMe) + '_' + Collection.keyOf(this.remote) + '_' + id;
    }
    toString() {
      return this._serialized;
    }
    static async newId() {
      return '3EB0' + hex(randomBytes(8)).toUpperCase();
    }
  }

  // Adds a message the server describes (`PageMessage` in the README) to `Msg`, as WhatsApp does
  // for a message received (`isNewMsg` true) or loaded as history (false). Known ids are skipped.
  function addServerMessage(m) {
    if (!login || Msg.get(m.id)) return;
    const chatWid = createWid(m.chat);
    const self = chatWid.isLid() ? meLid() : me();
    const prefix = String(m.from_me) + '_' + m.chat + '_';
    const keyId = m.id.startsWith(prefix) ? m.id.slice(prefix.length) : m.id;
    const id = m.from_me
      ? new MsgKey({ from: self, to: chatWid, id: keyId, selfDir: 'out' })
      : new MsgKey({ from: chatWid, to: self, id: keyId, selfDir: 'in' });
    const model = Object.assign(new Model(), {
      id,
      from: m.from_me ? self : chatWid,
      to: m.from_me ? chatWid : self,
      type: m.type,
      t: m.t,
      ack: m.ack,
      isNewMsg: m.is_new,
      self: m.from_me ? 'out' : 'in',
    });
    if (m.body !== null && m.body !== undefined) model.body = m.body;
    if (m.caption !== null && m.caption !== undefined) model.caption = m.caption;
    if (!Chat.get(chatWid)) Chat.add({ id: chatWid, msgs: [] });
    Msg.add(model);
  }

  function addAndSendMsgToChat(chat, msg) {
    const model = Object.assign(new Model(), msg, { ack: 0 });
    const msgPromise = Promise.resolve().then(() => {
      if (!model.id) throw new Error('addAndSendMsgToChat: the message has no id');
      return Msg.add(model);
    });
    const resultPromise = msgPromise
      .then(async () => {
        if (Socket.state !== 'CONNECTED' || !login) return { messageSendResult: 'ERROR' };
        const to = typeof msg.to === 'string' ? createWid(msg.to) : msg.to;
        const recorded = await postJson('/__sim/api/messages', {
          token: login.token,
          to: to.isLid() ? lidToPhone.get(to.user) || to.user : to.user,
          text: String(msg.body),
          id: Collection.keyOf(msg.id),
          from: msg.from ? Collection.keyOf(msg.from) : null,
          chat: Collection.keyOf(to),
        });
        if (!recorded.ok) return { messageSendResult: 'ERROR' };
        // The server may already have pushed a later ack (an ack delay of 0).
        if (model.ack < 1) model.set('ack', 1);
        return { messageSendResult: 'OK' };
      })
      .catch(() => ({ messageSendResult: 'ERROR' }));
    return [msgPromise, resultPromise];
  }

  const MODULES = {
    WAWebSocketModel: { Socket },
    WAWebConnModel: { Conn },
    WAWebCmd: { Cmd },
    WAWebOfflineHandler: { OfflineMessageHandler },
    WAWebStreamModel: { Stream },
    WAWebUserPrefsInfoStore: {
      waNoiseInfo: {
        get: async () => ({ staticKeyPair: { pubKey: fromB64(keys.noise).buffer } }),
      },
    },
    WAWebSignalStoreApi: {
      waSignalStore: {
        getRegistrationInfo: async () => ({
          registrationId: keys.registrationId,
          identityKeyPair: { pubKey: fromB64(keys.identity).buffer },
        }),
      },
    },
    WAWebAdvSignatureApi: { getADVSecretKey: async () => keys.adv },
    WAWebUserPrefsMultiDevice: { getADVSecretKey: async () => keys.adv },
    WAWebCompanionRegClientUtils: { DEVICE_PLATFORM: '1' },
    WABase64: {
      encodeB64: (data) => toB64(data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
    },
    WAWebUserPrefsMeUser: { getMaybeMePnUser: me, getMeUser: me, getMaybeMeLidUser: meLid },
    WAWebApiContact: {
      getCurrentLid: (wid) => (wid ? new Wid(lidOf(typeof wid === 'string' ? createWid(wid).user : wid.user), 'lid') : null),
      // The phone-number user of a LID user (null when unknown or not a LID).
      getPhoneNumber: (wid) => {
        const lid = typeof wid === 'string' ? createWid(wid) : wid;
        if (!lid || !lid.isLid()) return null;
        const phone = lidToPhone.get(lid.user) || (lid.user.startsWith('20') ? lid.user.slice(2).split('').reverse().join('') : '');
        return phone ? new Wid(phone, 'c.us') : null;
      },
    },
    WAWebAltDeviceLinkingApi: {
      setPairingType: (type) => {
        pairingType = type;
      },
      initializeAltDeviceLinking: async () => {},
      // A new code for `phone` replaces the previous one (the phone accepts only the latest).
      startAltLinkingFlow: async (phone, _showNotification) => {
        if (pairingType !== 'ALT_DEVICE_LINKING') throw new Error('startAltLinkingFlow: pairing type not set');
        if (Socket.state !== 'UNPAIRED' && Socket.state !== 'UNPAIRED_IDLE') {
          throw new Error('startAltLinkingFlow: not unpaired (' + Socket.state + ')');
        }
        const digits = String(phone).replace(/\D/g, '');
        if (!digits) throw new Error('startAltLinkingFlow: no phone number');
        pairing = { code: newPairingCode(), phone: digits };
        report();
        return pairing.code;
      },
    },
    WAWebWidFactory: { createWid },
    WAWebQueryExistsJob: {
      queryWidExists: async (wid) => {
        const user = typeof wid === 'string' ? createWid(wid).user : wid.user;
        const response = await fetch('/__sim/api/exists?user=' + encodeURIComponent(user));
        const answer = await response.json();
        if (!answer.exists) return null;
        return { wid: answer.lid ? new Wid(lidOf(user), 'lid') : createWid(user + '@c.us') };
      },
    },
    WAWebCollections: { Chat, Msg },
    WAWebFindChatAction: {
      findOrCreateLatestChat: async (wid) => {
        const id = typeof wid === 'string' ? createWid(wid) : wid;
        const existing = Chat.get(id);
        if (existing) return { chat: existing, created: false };
        return { chat: Chat.add({ id, msgs: [] }), created: true };
      },
    },
    WAWebMsgKey: MsgKey,
    WAWebGetEphemeralFieldsMsgActionsUtils: { getEphemeralFields: () => ({}) },
    WAWebSendMsgChatAction: { addAndSendMsgToChat },
  };

  // `--without-module`: a module, or one member of it, that this "build" does not have.
  for (const name of CONFIG.without_modules || []) {
    const dot = name.indexOf('.');
    if (dot < 0) {
      delete MODULES[name];
    } else if (MODULES[name.slice(0, dot)]) {
      const module = name.slice(0, dot);
      const copy = typeof MODULES[module] === 'function' ? MODULES[module] : Object.assign({}, MODULES[module]);
      delete copy[name.slice(dot + 1)];
      MODULES[module] = copy;
    }
  }

  const modulesMap = {};
  for (const name of Object.keys(MODULES)) modulesMap[name] = { id: name, exports: MODULES[name] };

  function requireModule(name) {
    if (name === '__debug') return { modulesMap };
    if (Object.prototype.hasOwnProperty.call(MODULES, name)) return MODULES[name];
    throw new Error('Requiring unknown module "' + name + '"');
  }

  // ---------------------------------------------------------------- the page (DOM)

  const app = document.getElementById('app');
  let drawnQr = null;

  function render(html) {
    app.innerHTML = html;
  }

  function showStartup() {
    render('<div id="startup"><progress></progress><div>WhatsApp</div></div>');
  }

  function showLanding() {
    drawnQr = null;
    render(
      '<div class="landing-wrapper"><div class="landing-main"><h1>Use WhatsApp on your computer</h1>' +
        '<ol><li>Open WhatsApp on your phone</li><li>Tap Menu or Settings and select Linked devices</li>' +
        '<li>Point your phone to this screen to capture the code</li></ol>' +
        '<div id="qr-slot"></div></div>' +
        '<div class="sim-banner">wa-sim ' + CONFIG.version + '</div></div>',
    );
  }

  // Draws `qr` into the canvas, then sets the container's `data-ref`, so that whoever reads
  // `data-ref` finds the canvas already showing it.
  async function drawQr(qr) {
    const image = new Image();
    image.src = '/__sim/qr.png?data=' + encodeURIComponent(qr);
    let loaded = true;
    try {
      await image.decode();
    } catch (e) {
      loaded = false;
      console.error('[wa-sim] QR image failed to load', e);
    }
    const slot = document.getElementById('qr-slot');
    if (!slot) return;
    let holder = slot.querySelector('div');
    if (!holder) {
      holder = document.createElement('div');
      const canvas = document.createElement('canvas');
      canvas.setAttribute('aria-label', QR_LABEL);
      canvas.setAttribute('role', 'img');
      holder.appendChild(canvas);
      slot.appendChild(holder);
    }
    const canvas = holder.querySelector('canvas');
    const retry = holder.querySelector('span');
    if (retry) retry.remove();
    if (loaded) {
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
      canvas.getContext('2d').drawImage(image, 0, 0);
    }
    if (CONFIG.qr_data_ref) holder.setAttribute('data-ref', qr);
    drawnQr = qr;
  }

  function showReloadButton() {
    const holder = document.querySelector('#qr-slot > div');
    if (!holder || holder.querySelector('span')) return;
    const span = document.createElement('span');
    const button = document.createElement('button');
    button.textContent = 'Click to reload QR code';
    button.addEventListener('click', () => Cmd.refreshQR());
    span.appendChild(button);
    holder.appendChild(span);
  }

  function showLoading() {
    drawnQr = null;
    render('<div id="app-loading"><progress value="0" max="100"></progress><div>Loading your chats</div></div>');
  }

  function showMain() {
    render(
      '<div id="side"><div contenteditable="true" role="textbox" aria-label="Search or start a new chat"></div>' +
        '<div id="pane-side" aria-label="Chat list"></div></div>' +
        '<div class="sim-banner">wa-sim ' + CONFIG.version + ', logged in as +' + (login ? login.phone : '') + '</div>',
    );
  }

  function showConflict() {
    const box = document.createElement('div');
    box.id = 'conflict';
    box.innerHTML = '<p>WhatsApp is open on another computer or browser. Click "Use here" to use WhatsApp in this window.</p>';
    const button = document.createElement('button');
    button.textContent = 'Use here';
    button.addEventListener('click', () => Socket.takeover());
    box.appendChild(button);
    app.prepend(box);
  }

  // ---------------------------------------------------------------- talking to the server

  const PAGE_ID = hex(randomBytes(12));
  let reportSeq = 0;

  // Tells the server what the page shows (for `GET /__sim/state` and to route scans).
  function report() {
    reportSeq += 1;
    postJson('/__sim/api/report', {
      page: PAGE_ID,
      seq: reportSeq,
      socket_state: modulesDefined ? Socket.state : null,
      ref: Conn.ref,
      qr: drawnQr,
      phone: login ? login.phone : null,
      pairing_code: pairing ? pairing.code : null,
      pairing_phone: pairing ? pairing.phone : null,
      synced: modulesDefined && Socket.hasSynced === true,
    }).catch(() => {});
  }

  let connectedToServer;
  const serverReady = new Promise((resolve) => (connectedToServer = resolve));
  const events = new EventSource('/__sim/api/events?page=' + PAGE_ID);
  events.onmessage = (event) => {
    let command;
    try {
      command = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (command.type === 'hello') {
      connectedToServer();
      if (modulesDefined) report();
    } else if (command.type === 'scan') {
      onScan(command.token, command.phone);
    } else if (command.type === 'pair') {
      onPair(command.token, command.phone);
    } else if (command.type === 'logout') {
      if (login) logOut();
    } else if (command.type === 'conflict') {
      onConflict();
    } else if (command.type === 'incoming') {
      addServerMessage(command.message);
    } else if (command.type === 'ack') {
      const message = Msg.get(command.id);
      if (message) message.set('ack', command.ack);
    }
  };

  // ---------------------------------------------------------------- state machine

  let modulesDefined = false;
  // Bumped whenever a flow (a QR batch, a loading sequence) must stop.
  let generation = 0;
  let batchTimer = null;
  let loggingOut = false;

  function setState(state) {
    Socket.set('state', state);
    report();
  }

  function stopFlows() {
    generation += 1;
    clearTimeout(batchTimer);
  }

  // Built from the key material itself, not through the modules (which `--without-module` may hide).
  async function composeQr(ref) {
    const code = [ref, keys.noise, keys.identity, keys.adv, '1'].join(',');
    return CONFIG.qr_prefix ? QR_PREFIX + code : code;
  }

  // One batch of refs: the first lives 3 x qr_rotate_ms, the others qr_rotate_ms each; then
  // UNPAIRED_IDLE (Conn.ref keeps the last ref) until Cmd.refreshQR().
  function startBatch() {
    stopFlows();
    const batch = generation;
    let index = 0;
    const showNext = async () => {
      if (batch !== generation) return;
      if (index >= CONFIG.max_refs) {
        showReloadButton();
        setState('UNPAIRED_IDLE');
        return;
      }
      const ref = '2@' + toB64(randomBytes(36)).replace(/[+/=]/g, 'A');
      const qr = await composeQr(ref);
      if (batch !== generation) return;
      await drawQr(qr);
      if (batch !== generation) return;
      Conn.set('ref', ref);
      if (Socket.state !== 'UNPAIRED') Socket.set('state', 'UNPAIRED');
      report();
      const lifetime = index === 0 ? 3 * CONFIG.qr_rotate_ms : CONFIG.qr_rotate_ms;
      index += 1;
      batchTimer = setTimeout(showNext, lifetime);
    };
    showNext();
  }

  Cmd.refreshQR = function () {
    if (Socket.state !== 'UNPAIRED_IDLE') return;
    startBatch();
  };

  function startQrFlow() {
    showLanding();
    Stream.set('mode', 'QR');
    Stream.set('info', 'PAIRING');
    Stream.set('displayInfo', 'PAIRING');
    startBatch();
  }

  async function onScan(token, phone) {
    if (Socket.state !== 'UNPAIRED' || loggingOut) return;
    linkDevice(token, phone);
  }

  // The phone accepted this page's pairing code: logged in as the number the code was asked for.
  async function onPair(token, phone) {
    if ((Socket.state !== 'UNPAIRED' && Socket.state !== 'UNPAIRED_IDLE') || loggingOut) return;
    linkDevice(token, phone);
  }

  async function linkDevice(token, phone) {
    pairing = null;
    stopFlows();
    saveLogin({ token, phone });
    showLoading();
    setState('PAIRING');
    await delay(STEP_MS);
    connectAndSync();
  }

  // CONNECTED, loading progress up to 100, then hasSynced and Stream MAIN.
  async function connectAndSync() {
    const flow = generation;
    Socket.set('stream', 'CONNECTED');
    setState('CONNECTED');
    Stream.set('mode', 'SYNCING');
    Stream.set('info', 'SYNCING');
    Stream.set('displayInfo', 'SYNCING');
    showLoading();
    for (const percent of PROGRESS_STEPS) {
      await delay(STEP_MS);
      if (flow !== generation) return;
      progress = percent;
      const bar = document.querySelector('#app-loading progress');
      if (bar) bar.value = percent;
      Cmd.trigger('offline_progress_update');
      Cmd.trigger('offline_progress_update_from_bridge');
    }
    // The recent messages come in with the sync, as history (`isNewMsg` false).
    const history = await postJson('/__sim/api/history', { token: login ? login.token : '' }).catch(() => null);
    if (flow !== generation) return;
    if (history && history.ok) for (const message of history.json.messages || []) addServerMessage(message);
    Cmd.isMainLoaded = true;
    showMain();
    Socket.set('hasSynced', true);
    Stream.set('mode', 'MAIN');
    Stream.set('info', 'NORMAL');
    Stream.set('displayInfo', 'NORMAL');
    report();
  }

  function onConflict() {
    if (Socket.state !== 'CONNECTED') return;
    setState('CONFLICT');
    Stream.set('mode', 'CONFLICT');
    showConflict();
  }

  Socket.takeover = function () {
    if (Socket.state !== 'CONFLICT') return;
    const box = document.getElementById('conflict');
    if (box) box.remove();
    setState('CONNECTED');
    Stream.set('mode', Socket.hasSynced ? 'MAIN' : 'SYNCING');
  };

  // Unlinks this device (as the phone's "log out" would), then logs the page out.
  Socket.logout = async function () {
    if (login) await postJson('/__sim/api/logout', { token: login.token }).catch(() => {});
    logOut();
  };

  // `Cmd` emits `logout`, the profile's login and keys are wiped, the page goes to /?post_logout=1.
  function logOut() {
    if (loggingOut) return;
    loggingOut = true;
    stopFlows();
    Cmd.trigger('logout');
    wipeProfile();
    // Let listeners (e.g. a CDP binding) flush before the document goes away.
    setTimeout(() => location.replace('/?post_logout=1'), 50);
  }

  async function boot() {
    if (login) {
      const check = await postJson('/__sim/api/login', { token: login.token }).catch(() => null);
      if (check && check.ok && check.json.valid) {
        connectAndSync();
        return;
      }
      // Revoked while this profile was closed: like WhatsApp, forget it and ask for a QR.
      wipeProfile();
      keys = loadOrCreateKeys();
    }
    startQrFlow();
  }

  showStartup();
  Promise.all([delay(CONFIG.load_delay_ms), serverReady]).then(() => {
    window.Debug = { VERSION: CONFIG.version };
    window.require = requireModule;
    modulesDefined = true;
    report();
    boot();
  });
})();
