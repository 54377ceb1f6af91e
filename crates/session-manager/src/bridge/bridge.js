/*
 * session-manager bridge: the ONLY code that knows WhatsApp Web's internals.
 * Injected into every document with Page.addScriptToEvaluateOnNewDocument; talks to Rust through
 * the CDP binding `__lmEmit` (Runtime.addBinding) and answers calls made with Runtime.evaluate on
 * `window.__lm`. When WhatsApp changes its page, this file changes, nothing else.
 *
 * Every internal it uses is found through LOCATIONS below: an ordered list of (module, member)
 * places, tried in order, each citing the public source it was read from. On load the bridge reports
 * which location resolved for each internal (the inventory); a missing required internal stops it
 * (the driver reports WHATSAPP_INCOMPATIBLE), a missing optional one disables that feature.
 *
 * Facts used (our own code, written from them; nothing copied), as the public whatsapp-web.js
 * package relies on them. "wwebjs 1.34.6" is pedroslopez/whatsapp-web.js (now wwebjs/whatsapp-web.js)
 * commit 03498ea; "wwebjs 1.34.7" is the npm package whatsapp-web.js@1.34.7 (line numbers its own):
 * - src/Client.js inject(): the page is loaded when `window.Debug.VERSION` is defined and
 *   `window.require` exists; login is needed when Socket.state is UNPAIRED or UNPAIRED_IDLE;
 *   the QR string is ref + "," + b64(noise static pubKey) + "," + b64(identity pubKey) + "," +
 *   ADV secret + "," + DEVICE_PLATFORM, re-emitted on Conn `change:ref`; ready is Socket
 *   `change:hasSynced`; loading progress is Cmd `offline_progress_update(_from_bridge)` +
 *   OfflineMessageHandler.getOfflineDeliveryProgress(); logout is Cmd `logout`; conflict is
 *   Socket.state CONFLICT, resolved by Socket.takeover().
 * - The `div[data-ref]` holding the QR canvas (wppconnect/venom scrape-img-qr.ts) carries exactly the
 *   string drawn, including the 2026 `https://wa.me/settings/linked_devices#` prefix (whatsmeow PR
 *   #1110), so it is preferred when present.
 * - Pairing code (wwebjs 1.34.7 src/Client.js requestPairingCode, l.514-560):
 *   WAWebAltDeviceLinkingApi setPairingType('ALT_DEVICE_LINKING'), initializeAltDeviceLinking(),
 *   startAltLinkingFlow(phone, showNotification) resolving to an 8-character code; valid while
 *   Socket.state is UNPAIRED or UNPAIRED_IDLE.
 *
 * - Incoming messages and acks (wwebjs 1.34.7 src/Client.js ≈ l.1129 and l.1039): `Msg` `add`
 *   with `isNewMsg` true and `id.fromMe` false is a new message (history loads with `isNewMsg`
 *   false, reported with `history: true`); `Msg` `change:ack` (model, level) on a message with
 *   `id.fromMe` is an ack of ours, levels
 *   -1 error, 0 pending, 1 sent, 2 delivered, 3 read, 4 played (src/util/Constants.js MessageAck).
 *   A LID user's phone-number user: WAWebApiContact.getPhoneNumber (wwebjs getContactLidAndPhone
 *   reads it from the same module, as Store.LidUtils).
 *
 * Contract with Rust (stable reason strings, nothing here ever throws):
 *   events: {type:'inventory',build,internals:[{name,group,required,location,tried}]}
 *           {type:'loaded',version} {type:'qr',code} {type:'state',wa_state} {type:'ready',phone}
 *           {type:'logout'} {type:'progress',percent} {type:'error',reason,detail}
 *           {type:'incoming',id,from,chat,message_type,text,timestamp,history} {type:'ack',id,to,ack,timestamp}
 *   window.__lm: snapshot() inventory() exists(number) send(to,text) refreshQr() logout() takeover()
 *                pairingCode(phone)
 */
(function () {
  'use strict';
  if (window.__lm) return;

  var BINDING = '__lmEmit';
  var LOAD_CHECK_MS = 25;
  // WhatsApp registers its modules in bursts: a required internal missing when `Debug.VERSION`
  // appears is looked for again until this much time has passed, then reported missing.
  var SETTLE_MS = 2000;
  var SETTLE_CHECK_MS = 100;

  // Where each internal lives, tried in order. `group` is what the internal is for: login, state and
  // send are required; acks, incoming and pairing (and loading progress) are optional features.
  // A location is [module, member]; a member of null means the module itself; `adapt` turns what was
  // found into the shape the bridge uses.
  var LOCATIONS = [
    // wwebjs 1.34.7 src/util/Injected/AuthStore/AuthStore.js (AppState, Conn, Cmd) and src/Client.js inject()
    { name: 'Socket', group: 'state', required: true, at: [['WAWebSocketModel', 'Socket']] },
    // wwebjs 1.34.7 src/util/Injected/Utils.js l.134-139 (Stream.markAvailable / markUnavailable)
    { name: 'Stream', group: 'state', required: true, at: [['WAWebStreamModel', 'Stream']] },
    { name: 'Conn', group: 'login', required: true, at: [['WAWebConnModel', 'Conn']] },
    { name: 'Cmd', group: 'login', required: true, at: [['WAWebCmd', 'Cmd']] },
    // wwebjs 1.34.7 src/Client.js l.247-276 (the QR string) and AuthStore.js (RegistrationUtils)
    { name: 'noiseKey', group: 'login', required: true, at: [['WAWebUserPrefsInfoStore', 'waNoiseInfo']] },
    { name: 'identityKey', group: 'login', required: true, at: [['WAWebSignalStoreApi', 'waSignalStore']] },
    // wwebjs 1.34.7 src/Client.js l.270 reads WAWebUserPrefsMultiDevice; AuthStore.js still spreads
    // WAWebAdvSignatureApi (the only place wwebjs 1.34.6 read it from)
    {
      name: 'advSecret', group: 'login', required: true,
      at: [['WAWebUserPrefsMultiDevice', 'getADVSecretKey'], ['WAWebAdvSignatureApi', 'getADVSecretKey']],
    },
    { name: 'platform', group: 'login', required: true, at: [['WAWebCompanionRegClientUtils', 'DEVICE_PLATFORM']] },
    { name: 'base64', group: 'login', required: true, at: [['WABase64', 'encodeB64']] },
    // wwebjs 1.34.7 src/util/Injected/Utils.js sendMessage (≈ l.400-470), getChat; Client.getNumberId
    { name: 'createWid', group: 'send', required: true, at: [['WAWebWidFactory', 'createWid']] },
    { name: 'queryWidExists', group: 'send', required: true, at: [['WAWebQueryExistsJob', 'queryWidExists']] },
    { name: 'Chat', group: 'send', required: true, at: [['WAWebCollections', 'Chat']] },
    { name: 'Msg', group: 'send', required: true, at: [['WAWebCollections', 'Msg']] },
    { name: 'findChat', group: 'send', required: true, at: [['WAWebFindChatAction', 'findOrCreateLatestChat']] },
    { name: 'MsgKey', group: 'send', required: true, at: [['WAWebMsgKey', null]] },
    // wwebjs 1.34.7 src/util/Injected/Utils.js l.420-426: `from` is getMaybeMeLidUser() for a chat
    // whose id isLid(), else getMaybeMePnUser()
    { name: 'mePn', group: 'send', required: true, at: [['WAWebUserPrefsMeUser', 'getMaybeMePnUser']] },
    {
      name: 'meLid', group: 'send', required: true,
      at: [
        ['WAWebUserPrefsMeUser', 'getMaybeMeLidUser'],
        // wwebjs 1.34.7 src/util/Injected/Utils.js l.1700-1710: WAWebApiContact.getCurrentLid(pn wid)
        ['WAWebApiContact', 'getCurrentLid', function (getCurrentLid) {
          return function () {
            var pn = internal('mePn');
            var me = pn && pn();
            return me ? getCurrentLid(me) : null;
          };
        }],
      ],
    },
    { name: 'ephemeralFields', group: 'send', required: true, at: [['WAWebGetEphemeralFieldsMsgActionsUtils', 'getEphemeralFields']] },
    { name: 'addAndSendMsgToChat', group: 'send', required: true, at: [['WAWebSendMsgChatAction', 'addAndSendMsgToChat']] },
    // Optional. wwebjs 1.34.7 src/util/Injected/AuthStore/AuthStore.js l.9 (OfflineMessageHandler)
    { name: 'progress', group: 'state', required: false, at: [['WAWebOfflineHandler', 'OfflineMessageHandler']] },
    // wwebjs 1.34.7 src/Client.js l.1039 (Msg change:ack) and l.1129 (Msg add, isNewMsg)
    { name: 'acks', group: 'acks', required: false, at: [['WAWebCollections', 'Msg', eventSource]] },
    { name: 'incoming', group: 'incoming', required: false, at: [['WAWebCollections', 'Msg', eventSource]] },
    // wwebjs 1.34.7 Client.getContactLidAndPhone (Store.LidUtils = WAWebApiContact); without it a LID
    // sender is reported by its LID digits
    { name: 'lidPhone', group: 'incoming', required: false, at: [['WAWebApiContact', 'getPhoneNumber']] },
    // wwebjs 1.34.7 src/Client.js requestPairingCode l.514-560
    { name: 'pairing', group: 'pairing', required: false, at: [['WAWebAltDeviceLinkingApi', 'startAltLinkingFlow', wholeModule]] },
  ];

  var attached = false;
  var lastQr = null;
  var keysPromise = null;
  var resolved = {};
  var inventoryReport = null;

  function eventSource(found) { return found && typeof found.on === 'function' ? found : undefined; }
  function wholeModule(_member, module) { return module; }

  function emit(event) {
    try {
      var binding = window[BINDING];
      if (typeof binding === 'function') binding(JSON.stringify(event));
    } catch (_) { /* the driver is gone: nothing to tell */ }
  }

  function modulesReady() {
    return !!(window.Debug && window.Debug.VERSION !== undefined && typeof window.require === 'function');
  }

  // A module by name, or null; the module map is checked first so an unknown name never throws
  // inside WhatsApp's own loader.
  function mod(name) {
    try {
      var debug = window.require('__debug');
      if (debug && debug.modulesMap && !(name in debug.modulesMap)) return null;
      return window.require(name) || null;
    } catch (_) {
      return null;
    }
  }

  function entryOf(name) {
    for (var i = 0; i < LOCATIONS.length; i++) if (LOCATIONS[i].name === name) return LOCATIONS[i];
    return null;
  }

  // Tries the entry's locations in order: `{value, location}` of the first that resolves, or null.
  function locate(entry) {
    for (var i = 0; i < entry.at.length; i++) {
      var place = entry.at[i];
      var module = mod(place[0]);
      if (!module) continue;
      var found = place[1] === null ? module : module[place[1]];
      if (found === undefined || found === null) continue;
      if (typeof found === 'function' && place[1] !== null) found = found.bind(module);
      if (place[2]) found = place[2](found, module);
      if (found === undefined || found === null) continue;
      return { value: found, location: place[1] === null ? place[0] : place[0] + '.' + place[1] };
    }
    return null;
  }

  // The internal `name` (cached once found), or null.
  function internal(name) {
    if (resolved[name]) return resolved[name].value;
    var entry = entryOf(name);
    var hit = entry && locate(entry);
    if (hit) resolved[name] = hit;
    return hit ? hit.value : null;
  }

  function inventory() {
    return {
      build: String(window.Debug && window.Debug.VERSION),
      internals: LOCATIONS.map(function (entry) {
        internal(entry.name);
        var hit = resolved[entry.name];
        return {
          name: entry.name, group: entry.group, required: entry.required,
          location: hit ? hit.location : null,
          tried: entry.at.map(function (p) { return p[1] === null ? p[0] : p[0] + '.' + p[1]; }),
        };
      }),
    };
  }

  function missingRequired() {
    return LOCATIONS.filter(function (e) { return e.required && !internal(e.name); });
  }

  function socket() { return internal('Socket'); }

  function describe(e) {
    return String((e && e.message) || e);
  }

  function needsQr(state) {
    return state === 'UNPAIRED' || state === 'UNPAIRED_IDLE';
  }

  function phone() {
    try {
      var me = internal('mePn') && internal('mePn')();
      return me ? String(me.user) : null;
    } catch (_) {
      return null;
    }
  }

  // The key material is per profile: read it once per document.
  function keyFields() {
    if (!keysPromise) {
      keysPromise = (async function () {
        var b64 = internal('base64');
        var noise = await internal('noiseKey').get();
        var reg = await internal('identityKey').getRegistrationInfo();
        var adv = await internal('advSecret')();
        return [b64(noise.staticKeyPair.pubKey), b64(reg.identityKeyPair.pubKey), adv, internal('platform')];
      })();
      keysPromise.catch(function () { keysPromise = null; });
    }
    return keysPromise;
  }

  async function currentQr() {
    var c = internal('Conn');
    var ref = c && c.ref;
    if (!ref) return null;
    var el = document.querySelector('div[data-ref]');
    var drawn = el && el.getAttribute('data-ref');
    if (drawn && drawn.indexOf(ref) !== -1) return drawn;
    var fields = await keyFields();
    return [ref].concat(fields).join(',');
  }

  async function emitQr() {
    try {
      var s = socket();
      if (!s || !needsQr(s.state)) return;
      var code = await currentQr();
      if (code && code !== lastQr) {
        lastQr = code;
        emit({ type: 'qr', code: code });
      }
    } catch (e) {
      emit({ type: 'error', reason: 'qr_unavailable', detail: describe(e) });
    }
  }

  function emitReady() {
    var s = socket();
    if (!s || !s.hasSynced) return;
    var p = phone();
    if (p) emit({ type: 'ready', phone: p });
  }

  function emitProgress() {
    try {
      var handler = internal('progress');
      if (!handler) return;
      emit({ type: 'progress', percent: Number(handler.getOfflineDeliveryProgress()) || 0 });
    } catch (_) { /* progress is informative only */ }
  }

  // Digits of the phone-number user behind `wid` (a LID resolved when the page can), or null.
  function phoneDigits(wid) {
    try {
      if (!wid) return null;
      if (typeof wid === 'string') wid = internal('createWid')(wid);
      if (wid.server === 'lid' && internal('lidPhone')) {
        var pn = internal('lidPhone')(wid);
        if (pn && pn.user) return String(pn.user);
      }
      return wid.user ? String(wid.user) : null;
    } catch (_) {
      return wid && wid.user ? String(wid.user) : null;
    }
  }

  function serialized(wid) {
    return wid ? String(wid._serialized || wid) : null;
  }

  // A message someone sent us (not ours): new, or history the page loads from its own store at login
  // (`isNewMsg` false), marked so; Rust journals history only past its watermark, so a message the
  // page took before the manager could journal it is reported after a restart.
  function onMessageAdded(msg) {
    try {
      if (!msg || !msg.id || msg.id.fromMe) return;
      var history = msg.isNewMsg !== true;
      // History without its WhatsApp time cannot be placed against the watermark: not reported.
      if (history && !(Number(msg.t) > 0)) return;
      var chat = msg.id.remote || msg.from;
      var sender = msg.author || msg.id.participant || msg.from || chat;
      var text = msg.type === 'chat' ? msg.body : msg.caption;
      emit({
        type: 'incoming', id: String(msg.id._serialized), from: phoneDigits(sender), chat: serialized(chat),
        message_type: String(msg.type || 'unknown'), text: typeof text === 'string' && text !== '' ? text : null,
        timestamp: Number(msg.t) > 0 ? Number(msg.t) * 1000 : Date.now(),
        history: history,
      });
    } catch (e) {
      emit({ type: 'error', reason: 'incoming_unreadable', detail: describe(e) });
    }
  }

  // The delivery state of one of our messages changed.
  function onAckChanged(msg, ack) {
    try {
      if (!msg || !msg.id || !msg.id.fromMe) return;
      emit({
        type: 'ack', id: String(msg.id._serialized), to: phoneDigits(msg.to || msg.id.remote),
        ack: Number(ack), timestamp: Date.now(),
      });
    } catch (e) {
      emit({ type: 'error', reason: 'ack_unreadable', detail: describe(e) });
    }
  }

  function attach() {
    if (attached) return;
    var s = socket();
    var c = internal('Conn');
    var k = internal('Cmd');
    attached = true;
    emit({ type: 'loaded', version: String(window.Debug.VERSION) });
    s.on('change:state', function (_model, state) {
      emit({ type: 'state', wa_state: String(state) });
      if (needsQr(state)) emitQr();
    });
    s.on('change:hasSynced', function (_model, synced) {
      if (synced) emitReady();
    });
    c.on('change:ref', function () { emitQr(); });
    k.on('logout', function () { emit({ type: 'logout' }); });
    k.on('logout_from_bridge', function () { emit({ type: 'logout' }); });
    k.on('offline_progress_update', emitProgress);
    k.on('offline_progress_update_from_bridge', emitProgress);
    // Optional features: without them the inventory says so and nothing is reported.
    if (internal('incoming')) internal('incoming').on('add', onMessageAdded);
    if (internal('acks')) internal('acks').on('change:ack', onAckChanged);
    emit({ type: 'state', wa_state: String(s.state) });
    emitQr();
    emitReady();
  }

  // Reports the inventory once the required internals are found, or once SETTLE_MS has passed
  // without them; attaches only to a compatible page (the driver stops an incompatible one).
  function settle(since) {
    if (missingRequired().length > 0 && Date.now() - since < SETTLE_MS) {
      setTimeout(function () { settle(since); }, SETTLE_CHECK_MS);
      return;
    }
    inventoryReport = inventory();
    emit({ type: 'inventory', build: inventoryReport.build, internals: inventoryReport.internals });
    if (missingRequired().length === 0) attach();
  }

  // The only timer: until WhatsApp's modules exist there is nothing to subscribe to.
  function waitForModules() {
    if (modulesReady()) {
      settle(Date.now());
      return;
    }
    var timer = setInterval(function () {
      if (modulesReady()) {
        clearInterval(timer);
        settle(Date.now());
      }
    }, LOAD_CHECK_MS);
  }

  function fail(reason, detail) {
    return { ok: false, reason: reason, detail: detail === undefined ? null : String(detail) };
  }

  function need(name) {
    var value = internal(name);
    if (!value) throw new Error('internal ' + name + ' not found (tried ' + entryOf(name).at.map(function (p) { return p[0] + (p[1] ? '.' + p[1] : ''); }).join(', ') + ')');
    return value;
  }

  window.__lm = {
    snapshot: function () {
      try {
        var s = socket();
        return {
          ok: true,
          loaded: modulesReady(),
          wa_state: s ? String(s.state) : null,
          qr: lastQr,
          phone: phone(),
          ready: !!(s && s.hasSynced && phone()),
        };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    // The inventory as reported on load (null before), or computed now when asked earlier.
    inventory: function () {
      try {
        if (!modulesReady()) return fail('not_loaded');
        var report = inventoryReport || inventory();
        return { ok: true, build: report.build, internals: report.internals };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    exists: async function (number) {
      try {
        var wid = need('createWid')(String(number) + '@c.us');
        var found = await need('queryWidExists')(wid);
        return { ok: true, exists: !!found };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    send: async function (to, text) {
      try {
        if (!modulesReady()) return fail('not_loaded');
        var pn = need('mePn')();
        if (!pn) return fail('not_logged_in');
        var wid = need('createWid')(String(to) + '@c.us');
        var found = await need('queryWidExists')(wid);
        if (!found) return fail('number_not_on_whatsapp');
        var chatWid = found.wid || wid;
        var chat = need('Chat').get(chatWid);
        if (!chat) {
          var created = await need('findChat')(chatWid);
          chat = created && created.chat;
        }
        if (!chat) return fail('chat_unavailable');
        // A chat WhatsApp moved to LID addressing is written to from this device's LID user.
        var from = pn;
        if (chat.id && typeof chat.id.isLid === 'function' && chat.id.isLid()) {
          from = need('meLid')();
          if (!from) return fail('not_logged_in', 'no LID user for a LID-addressed chat');
        }
        var MsgKey = need('MsgKey');
        var key = new MsgKey({ from: from, to: chat.id, id: await MsgKey.newId(), participant: undefined, selfDir: 'out' });
        var seconds = Math.floor(Date.now() / 1000);
        var message = Object.assign({
          id: key, ack: 0, body: String(text), from: from, to: chat.id, local: true, self: 'out',
          t: seconds, isNewMsg: true, type: 'chat',
        }, need('ephemeralFields')(chat));
        var pair = need('addAndSendMsgToChat')(chat, message);
        await pair[0];
        var result = await pair[1];
        var outcome = result && result.messageSendResult;
        if (outcome !== 'OK') return fail('send_failed', outcome);
        return { ok: true, id: String(key._serialized), timestamp: seconds * 1000 };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    // Link with a phone number instead of a QR: an 8-character code to type on the phone.
    pairingCode: async function (number) {
      try {
        var api = internal('pairing');
        if (!api) return fail('feature_disabled', 'WAWebAltDeviceLinkingApi not found');
        var s = socket();
        if (!s || !needsQr(s.state)) return fail('not_unpaired', s ? s.state : null);
        api.setPairingType('ALT_DEVICE_LINKING');
        await api.initializeAltDeviceLinking();
        var code = await api.startAltLinkingFlow(String(number), false);
        return { ok: true, code: String(code) };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    refreshQr: function () {
      try {
        need('Cmd').refreshQR();
        return { ok: true };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    // Resolves once WhatsApp confirmed the unlink (Socket.logout() returns a promise), so the
    // driver may close the browser right after without leaving the device linked on the phone.
    logout: async function () {
      try {
        await need('Socket').logout();
        return { ok: true };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    takeover: function () {
      try {
        need('Socket').takeover();
        return { ok: true };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },
  };

  waitForModules();
})();
