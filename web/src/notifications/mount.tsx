/**
 * Toasts on a page without React of its own: `mountNotificationToaster()` renders
 * `<NotificationToaster/>` into an element (a new one at the end of `<body>` by default) with its own
 * React root, so `notify.*` and `NotificationClient`'s default toasts work from plain scripts.
 *
 * @packageDocumentation
 */

import { createRoot } from 'react-dom/client';
import { NotificationToaster, type NotificationToasterProps } from './notify';

/** Renders the toaster into `container` (default: a new `<div>` appended to `<body>`); returns the unmount. */
export function mountNotificationToaster(container?: Element, props: NotificationToasterProps = {}): () => void {
  const host = container ?? document.body.appendChild(document.createElement('div'));
  const root = createRoot(host);
  root.render(<NotificationToaster {...props} />);
  return () => {
    root.unmount();
    if (!container) host.remove();
  };
}
