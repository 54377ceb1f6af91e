/*
 * session-manager bridge: the ONLY code that knows WhatsApp Web's internals.
 * Injected into every document with Page.addScriptToEvaluateOnNewDocument; talks to Rust through
 * the CDP binding `__lmEmit` (Runtime.addBinding) and answers calls made with Runtime.evaluate on
 * `window.__lm`. When WhatsApp changes its page, this file changes, nothing else.
 *
 * Facts used (our own code, written from them; nothing copied), as whatsapp-web.js v1.34.6
 * (pedroslopez/whatsapp-web.js, now wwebjs/whatsapp-web.js, commit 03498ea) relies on them:
 * - src/Client.js inject(): the page is loaded when `window.Debug.VERSION` is defined and
 *   `window.require` exists; login is needed when Socket.state is UNPAIRED or UNPAIRED_IDLE;
 *   the QR string is ref + "," + b64(noise static pubKey) + "," + b64(identity pubKey) + "," +
 *   ADV secret + "," + DEVICE_PLATFORM, re-emitted on Conn `change:ref`; ready is Socket
 *   `change:hasSynced`; the phone is WAWebUserPrefsMeUser.getMaybeMePnUser(); loading progress is
 *   Cmd `offline_progress_update(_from_bridge)` + OfflineMessageHandler.getOfflineDeliveryProgress();
 *   logout is Cmd `logout`; conflict is Socket.state CONFLICT, resolved by Socket.takeover().
 * - src/util/Injected/AuthStore/AuthStore.js: module names WAWebSocketModel.Socket, WAWebCmd.Cmd,
 *   WAWebConnModel.Conn, WAWebOfflineHandler, WABase64, WAWebCompanionRegClientUtils,
 *   WAWebAdvSignatureApi, WAWebUserPrefsInfoStore (waNoiseInfo), WAWebSignalStoreApi (waSignalStore).
 * - src/util/Injected/Utils.js sendMessage/getChat: WAWebWidFactory.createWid,
 *   WAWebCollections.Chat.get, WAWebFindChatAction.findOrCreateLatestChat, WAWebMsgKey (newId,
 *   constructor {from,to,id,participant,selfDir:'out'}), WAWebGetEphemeralFieldsMsgActionsUtils,
 *   WAWebSendMsgChatAction.addAndSendMsgToChat -> [msgPromise, sendResultPromise];
 *   Client.getNumberId: WAWebQueryExistsJob.queryWidExists(wid) -> {wid} or null.
 * - The `div[data-ref]` holding the QR canvas (wppconnect/venom scrape-img-qr.ts) carries exactly the
 *   string drawn, including the 2026 `https://wa.me/settings/linked_devices#` prefix (whatsmeow PR
 *   #1110), so it is preferred when present.
 *
 * Contract with Rust (stable reason strings, nothing here ever throws):
 *   events: {type:'loaded',version} {type:'qr',code} {type:'state',wa_state} {type:'ready',phone}
 *           {type:'logout'} {type:'progress',percent} {type:'error',reason,detail}
 *   window.__lm: snapshot() exists(number) send(to,text) refreshQr() logout() takeover()
 */
(function () {
  'use strict';
  if (window.__lm) return;

  var BINDING = '__lmEmit';
  var LOAD_CHECK_MS = 25;
  var attached = false;
  var lastQr = null;
  var keysPromise = null;

  function emit(event) {
    try {
      var binding = window[BINDING];
      if (typeof binding === 'function') binding(JSON.stringify(event));
    } catch (_) { /* the driver is gone: nothing to tell */ }
  }

  function modulesReady() {
    return !!(window.Debug && window.Debug.VERSION !== undefined && typeof window.require === 'function');
  }

  function mod(name) {
    try {
      var debug = window.require('__debug');
      if (debug && debug.modulesMap && !(name in debug.modulesMap)) return null;
      return window.require(name) || null;
    } catch (_) {
      return null;
    }
  }

  function socket() { var m = mod('WAWebSocketModel'); return m && m.Socket; }
  function conn() { var m = mod('WAWebConnModel'); return m && m.Conn; }
  function cmd() { var m = mod('WAWebCmd'); return m && m.Cmd; }

  function describe(e) {
    return String((e && e.message) || e);
  }

  function needsQr(state) {
    return state === 'UNPAIRED' || state === 'UNPAIRED_IDLE';
  }

  function phone() {
    try {
      var m = mod('WAWebUserPrefsMeUser');
      var me = m && m.getMaybeMePnUser();
      return me ? String(me.user) : null;
    } catch (_) {
      return null;
    }
  }

  // The key material is per profile: read it once per document.
  function keyFields() {
    if (!keysPromise) {
      keysPromise = (async function () {
        var b64 = mod('WABase64');
        var noise = await mod('WAWebUserPrefsInfoStore').waNoiseInfo.get();
        var reg = await mod('WAWebSignalStoreApi').waSignalStore.getRegistrationInfo();
        var adv = await mod('WAWebAdvSignatureApi').getADVSecretKey();
        var platform = mod('WAWebCompanionRegClientUtils').DEVICE_PLATFORM;
        return [b64.encodeB64(noise.staticKeyPair.pubKey), b64.encodeB64(reg.identityKeyPair.pubKey), adv, platform];
      })();
      keysPromise.catch(function () { keysPromise = null; });
    }
    return keysPromise;
  }

  async function currentQr() {
    var c = conn();
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
      var m = mod('WAWebOfflineHandler');
      var percent = m && m.OfflineMessageHandler.getOfflineDeliveryProgress();
      emit({ type: 'progress', percent: Number(percent) || 0 });
    } catch (_) { /* progress is informative only */ }
  }

  function attach() {
    if (attached) return;
    var s = socket();
    var c = conn();
    var k = cmd();
    if (!s || !c || !k) {
      emit({ type: 'error', reason: 'module_missing', detail: 'WAWebSocketModel, WAWebConnModel or WAWebCmd' });
      return;
    }
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
    emit({ type: 'state', wa_state: String(s.state) });
    emitQr();
    emitReady();
  }

  // The only timer: until WhatsApp's modules exist there is nothing to subscribe to.
  function waitForModules() {
    if (modulesReady()) {
      attach();
      return;
    }
    var timer = setInterval(function () {
      if (modulesReady()) {
        clearInterval(timer);
        attach();
      }
    }, LOAD_CHECK_MS);
  }

  function fail(reason, detail) {
    return { ok: false, reason: reason, detail: detail === undefined ? null : String(detail) };
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

    exists: async function (number) {
      try {
        var wid = mod('WAWebWidFactory').createWid(String(number) + '@c.us');
        var found = await mod('WAWebQueryExistsJob').queryWidExists(wid);
        return { ok: true, exists: !!found };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    send: async function (to, text) {
      try {
        if (!modulesReady()) return fail('not_loaded');
        var me = mod('WAWebUserPrefsMeUser').getMaybeMePnUser();
        if (!me) return fail('not_logged_in');
        var wid = mod('WAWebWidFactory').createWid(String(to) + '@c.us');
        var found = await mod('WAWebQueryExistsJob').queryWidExists(wid);
        if (!found) return fail('number_not_on_whatsapp');
        var chatWid = found.wid || wid;
        var collections = mod('WAWebCollections');
        var chat = collections.Chat.get(chatWid);
        if (!chat) {
          var created = await mod('WAWebFindChatAction').findOrCreateLatestChat(chatWid);
          chat = created && created.chat;
        }
        if (!chat) return fail('chat_unavailable');
        var MsgKey = mod('WAWebMsgKey');
        var key = new MsgKey({ from: me, to: chat.id, id: await MsgKey.newId(), participant: undefined, selfDir: 'out' });
        var seconds = Math.floor(Date.now() / 1000);
        var message = Object.assign({
          id: key, ack: 0, body: String(text), from: me, to: chat.id, local: true, self: 'out',
          t: seconds, isNewMsg: true, type: 'chat',
        }, mod('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat));
        var pair = mod('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
        await pair[0];
        var result = await pair[1];
        var outcome = result && result.messageSendResult;
        if (outcome !== 'OK') return fail('send_failed', outcome);
        return { ok: true, id: String(key._serialized), timestamp: seconds * 1000 };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    refreshQr: function () {
      try {
        cmd().refreshQR();
        return { ok: true };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    // Resolves once WhatsApp confirmed the unlink (Socket.logout() returns a promise), so the
    // driver may close the browser right after without leaving the device linked on the phone.
    logout: async function () {
      try {
        await socket().logout();
        return { ok: true };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },

    takeover: function () {
      try {
        socket().takeover();
        return { ok: true };
      } catch (e) {
        return fail('exception', describe(e));
      }
    },
  };

  waitForModules();
})();
