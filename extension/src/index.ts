/**
 * jray-lab: the JupyterLab front end of the jray server extension.
 *
 * A "jray" left sidebar (sidebar.ts) and commands to open the live views
 * (Bokeh pages served by the server extension under the base URL) in main-area
 * panels, to follow a submitted job's log in a main-area panel (jobs.ts) and
 * to insert the `jray.init()` snippet into the active notebook; a
 * "jray cluster" Launcher card (opens the sidebar) and a status-bar item
 * ("jray: 3 nodes · 4/8 CPU", click for the sidebar).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { IFrame, LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IStatus, requestAPI } from './api';
import { JobLogPanel } from './jobs';
import { ClusterSidebar } from './sidebar';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">
<g class="jp-icon3" fill="#616161"><circle cx="8" cy="3" r="2"/><circle cx="3" cy="12" r="2"/>
<circle cx="13" cy="12" r="2"/><path d="M7.5 4.5h1v3l4 3-.6.8L8 8.4l-3.9 2.9-.6-.8 4-3z"/></g></svg>`;

const jrayIcon = new LabIcon({ name: 'jray-lab:icon', svgstr: ICON_SVG });

namespace CommandIDs {
  export const openView = 'jray:open-view';
  export const insertInit = 'jray:insert-init';
  export const showSidebar = 'jray:show-sidebar';
  export const openJobLogs = 'jray:open-job-logs';
}

const STATUS_POLL_MS = 5000;

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** The status bar's one line: nodes and CPUs in use of total, or the state. */
export function statusText(s: IStatus): string {
  if (s.state !== 'running') {
    return `jray: ${s.state}`;
  }
  const total = s.resources_total?.CPU ?? 0;
  const used = total - (s.resources_available?.CPU ?? 0);
  const nodes = s.nodes_alive ?? 0;
  return `jray: ${nodes} node${nodes === 1 ? '' : 's'} · ${num(used)}/${num(total)} CPU`;
}

/** The status-bar item, polling `jray/api/status` on its own (the sidebar polls only while shown). */
class StatusItem extends Widget {
  constructor(onClick: () => void) {
    super();
    this.addClass('jray-statusbar-item');
    this.node.title = 'jray cluster: click for the sidebar';
    this.node.textContent = 'jray: …';
    this.node.addEventListener('click', onClick);
    this.timer = window.setInterval(() => void this.refresh(), STATUS_POLL_MS);
    void this.refresh();
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  async refresh(): Promise<void> {
    if (this.busy || this.isDisposed) {
      return;
    }
    this.busy = true;
    try {
      const s = await requestAPI<IStatus>('status');
      this.node.textContent = statusText(s);
      this.node.dataset.state = s.state;
    } catch {
      this.node.textContent = 'jray: unavailable';
      this.node.dataset.state = 'unavailable';
    } finally {
      this.busy = false;
    }
  }

  private timer: number;
  private busy = false;
}

const VIEW_TITLES: { [name: string]: string } = {
  task_stream: 'jray task stream',
  object_store: 'jray object store',
  metrics: 'jray metrics',
  nodes: 'jray nodes',
  logs: 'jray logs',
  progress: 'jray progress',
  tables: 'jray tasks, actors, jobs'
};

/** Lab's theme as the pages take it (`?theme=dark|light`): JupyterLab marks
 * the body `data-jp-theme-light` while a theme is applied. */
export function labTheme(): string | null {
  const light = document.body.dataset.jpThemeLight;
  return light === 'true' ? 'light' : light === 'false' ? 'dark' : null;
}

/** A view's URL in Lab's theme (its hash, the page's own state, kept). */
export function themedUrl(url: string, theme: string | null = labTheme()): string {
  if (!theme) {
    return url;
  }
  const [base, hash] = url.split('#', 2);
  const clean = base.replace(/([?&])theme=[^&]*(&|$)/, '$1').replace(/[?&]$/, '');
  return `${clean}${clean.includes('?') ? '&' : '?'}theme=${theme}${hash === undefined ? '' : '#' + hash}`;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jray-lab:plugin',
  description: 'A sidebar for the jray cluster of this Jupyter server.',
  autoStart: true,
  optional: [INotebookTracker, ICommandPalette, ILauncher, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    statusBar: IStatusBar | null
  ) => {
    const open = new Map<string, MainAreaWidget<IFrame>>();

    app.commands.addCommand(CommandIDs.openView, {
      label: args => `Open ${VIEW_TITLES[args.name as string] ?? 'jray view'}`,
      execute: args => {
        const name = args.name as string;
        const url = args.url as string;
        const existing = open.get(name);
        if (existing && !existing.isDisposed) {
          app.shell.activateById(existing.id);
          return;
        }
        // Scripts must run (BokehJS) and the page must send Jupyter's cookie
        // to poll its data URL: same origin, under the server's base URL.
        const content = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin'] });
        content.url = themedUrl(url);
        content.node.dataset.jrayBaseUrl = url;
        content.addClass('jray-view-frame');
        const widget = new MainAreaWidget({ content });
        widget.id = `jray-view-${name}`;
        widget.title.label = VIEW_TITLES[name] ?? name;
        widget.title.icon = jrayIcon;
        widget.title.closable = true;
        open.set(name, widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });

    // The pages follow Lab's theme: open ones reload in the new colours.
    let shownTheme = labTheme();
    new MutationObserver(() => {
      const theme = labTheme();
      if (theme === shownTheme) {
        return;
      }
      shownTheme = theme;
      for (const widget of open.values()) {
        if (!widget.isDisposed && widget.content.node.dataset.jrayBaseUrl) {
          widget.content.url = themedUrl(widget.content.node.dataset.jrayBaseUrl);
        }
      }
    }).observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-light'] });

    const logPanels = new Map<string, MainAreaWidget<JobLogPanel>>();
    app.commands.addCommand(CommandIDs.openJobLogs, {
      label: args => `Follow the log of job ${String(args.id ?? '')}`,
      execute: args => {
        const sid = String(args.id ?? '');
        if (!sid) {
          return;
        }
        const existing = logPanels.get(sid);
        if (existing && !existing.isDisposed) {
          app.shell.activateById(existing.id);
          return;
        }
        const content = new JobLogPanel(sid);
        content.entrypoint = String(args.entrypoint ?? '');
        const widget = new MainAreaWidget({ content });
        widget.id = `jray-job-logs-${sid.replace(/[^A-Za-z0-9_-]/g, '_')}`;
        widget.addClass('jray-job-log-panel');
        widget.title.label = `job ${sid}`;
        widget.title.caption = `jray job ${sid}: its log, followed live`;
        widget.title.icon = jrayIcon;
        widget.title.closable = true;
        logPanels.set(sid, widget);
        widget.disposed.connect(() => logPanels.delete(sid));
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });

    app.commands.addCommand(CommandIDs.insertInit, {
      label: 'Insert jray.init() into the notebook',
      isEnabled: () => !!notebooks?.currentWidget,
      execute: args => {
        const panel = notebooks?.currentWidget;
        if (!panel) {
          return;
        }
        const notebook = panel.content;
        NotebookActions.insertAbove(notebook);
        const cell = notebook.activeCell;
        if (cell) {
          cell.model.sharedModel.setSource(String(args.snippet ?? 'import jray\n\njray.init()\n').trimEnd());
        }
        app.shell.activateById(panel.id);
      }
    });

    const sidebar = new ClusterSidebar({
      openView: (name, url) => void app.commands.execute(CommandIDs.openView, { name, url }),
      insertSnippet: snippet => void app.commands.execute(CommandIDs.insertInit, { snippet }),
      openJobLogs: (id, entrypoint) => void app.commands.execute(CommandIDs.openJobLogs, { id, entrypoint })
    });
    sidebar.title.icon = jrayIcon;
    app.shell.add(sidebar, 'left', { rank: 900 });

    app.commands.addCommand(CommandIDs.showSidebar, {
      label: args => (args.launcher ? 'jray cluster' : 'Show the jray cluster sidebar'),
      caption: 'The jray cluster of this server: nodes, resources, live views',
      icon: args => (args.launcher ? jrayIcon : undefined),
      execute: () => app.shell.activateById(sidebar.id)
    });
    if (launcher) {
      launcher.add({ command: CommandIDs.showSidebar, args: { launcher: true }, category: 'Other', rank: 50 });
    }
    if (statusBar) {
      const item = new StatusItem(() => app.shell.activateById(sidebar.id));
      item.id = 'jray-statusbar-item';
      statusBar.registerStatusItem('jray-lab:status', { item, align: 'left', rank: 100 });
    }
    if (palette) {
      palette.addItem({ command: CommandIDs.showSidebar, category: 'jray' });
      palette.addItem({ command: CommandIDs.insertInit, category: 'jray' });
    }
  }
};

export default plugin;
