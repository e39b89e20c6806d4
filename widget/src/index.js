// The embeddable chat widget. One script tag, then:
//   FeedbackWidget.init({server, locale, user, signature}); FeedbackWidget.open(); FeedbackWidget.close();
// Protocol: docs/widget-protocol.md.
import { Widget } from "./widget.js";

// Captured while this script runs: afterwards document.currentScript is gone.
const script = document.currentScript;

function scriptOrigin() {
  try {
    if (script && script.src) return new URL(script.src, location.href).origin;
  } catch {
    // an unusual src: fall through
  }
  return location.origin;
}

const defaultServer = scriptOrigin();
let widget = null;

const FeedbackWidget = Object.freeze({
  // options: {server?: origin of the service (default: where this script came from),
  //           locale?: BCP 47 tag (default: navigator.language),
  //           user?: the host app's user id, signature?: hex HMAC-SHA256 of user}
  init(options = {}) {
    if (widget) {
      console.warn("FeedbackWidget.init: already initialised");
      return FeedbackWidget;
    }
    widget = new Widget(options || {}, defaultServer);
    widget.start().catch((err) => console.warn("FeedbackWidget:", err));
    return FeedbackWidget;
  },
  open() {
    if (widget) widget.open();
  },
  close() {
    if (widget) widget.close();
  },
});

window.FeedbackWidget = FeedbackWidget;
