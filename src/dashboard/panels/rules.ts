/**
 * Rules: the staged rules as JSON to edit and stage (`PUT /rules`: a 400 shows what is wrong),
 * what a reload would change (`GET /rules/diff`), and Reload.
 */
import type { Api } from '../api.js';
import { $, clear, el, filenameNode, setMessage, type MessageKind } from '../dom.js';

export class RulesPanel {
  private dirty = false;
  private readonly text = $('rules-text') as HTMLTextAreaElement;
  private readonly message = $('rules-message');
  private readonly reload = $('rules-reload') as HTMLButtonElement;

  /** `changed` runs after a stage or a reload: files, machines and counts follow. */
  constructor(
    private readonly api: Api,
    private readonly changed: () => void,
  ) {
    this.text.addEventListener('input', () => {
      this.dirty = true;
      this.text.classList.add('dirty');
    });
    $('rules-stage').addEventListener('click', () => void this.stage());
    $('rules-revert').addEventListener('click', () => {
      this.say('', '');
      void this.refreshRules(true);
    });
    this.reload.addEventListener('click', () => void this.apply());
  }

  private say(kind: MessageKind, text: string, cause?: 'unreachable'): void {
    setMessage(this.message, kind, text, cause);
  }

  /** Clears a message about a daemon that could not be reached: it can now. */
  clearStale(): void {
    if (this.message.dataset.cause === 'unreachable') this.say('', '');
  }

  /** Whether the rules actor takes a reload now (it is `ready`). */
  ready(ready: boolean): void {
    this.reload.disabled = !ready;
  }

  counts(staged: number, active: number): void {
    $('rules-counts').textContent = `· ${staged} staged, ${active} active`;
  }

  async refreshRules(force: boolean): Promise<void> {
    const r = await this.api.get('/rules');
    if (!r.ok || (this.dirty && !force)) return;
    this.text.value = JSON.stringify(r.body.rules, null, 2);
    this.dirty = false;
    this.text.classList.remove('dirty');
  }

  async refreshDiff(): Promise<void> {
    const r = await this.api.get('/rules/diff');
    if (!r.ok) return;
    const body = clear($('rules-diff'));
    const changes = r.body.changes;
    if (!changes.length) {
      body.append(el('tr', null, [el('td', { class: 'empty', colspan: 3, text: 'Nothing: a reload would change no file’s owners.' })]));
    }
    for (const c of changes.slice(0, 200)) {
      body.append(
        el('tr', { 'data-testid': `diff-row-${c.filename}` }, [
          el('td', { class: 'file', 'data-label': 'File' }, [filenameNode(c.filename)]),
          el('td', { class: 'gain', 'data-label': 'Gains', text: c.gain.length ? `+ ${c.gain.join(', ')}` : '' }),
          el('td', { class: 'lose', 'data-label': 'Loses', text: c.lose.length ? `− ${c.lose.join(', ')}` : '' }),
        ]),
      );
    }
    if (changes.length > 200) {
      body.append(el('tr', null, [el('td', { class: 'empty', colspan: 3, text: `… and ${changes.length - 200} more files` })]));
    }
  }

  private async stage(): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(this.text.value);
    } catch (err) {
      this.say('error', `not JSON: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const body = Array.isArray(parsed) ? { rules: parsed } : parsed;
    const r = await this.api.call('PUT', '/rules', body);
    if (!r.ok) {
      this.say('error', r.reason, r.status === 0 ? 'unreachable' : undefined);
      return;
    }
    this.say('ok', 'Staged. Nothing moves until you reload.');
    this.dirty = false;
    this.text.classList.remove('dirty');
    await Promise.all([this.refreshRules(true), this.refreshDiff()]);
    this.changed();
  }

  private async apply(): Promise<void> {
    this.reload.disabled = true;
    this.say('muted', 'Reloading…');
    const r = await this.api.call('PUT', '/rules/reload');
    if (r.ok) this.say('ok', 'Reloaded: the staged rules are in force and written to the setup file.');
    else this.say('error', r.reason, r.status === 0 ? 'unreachable' : undefined);
    this.reload.disabled = false;
    await this.refreshDiff();
    this.changed();
  }
}
