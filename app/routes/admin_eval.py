"""/admin/eval: start a tournament as a background job and follow its progress (htmx polls the
page's ``job`` block while it runs). Behind the admin login, like /admin; one job at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from app.errors import DomainError, Invalid, shown
from app.eval.context import EvalContext
from app.eval.jobs import Jobs, Work, tournament
from app.eval.suites import SuiteError, available, load_suite
from app.routes.admin import admin_guard, is_admin
from app.web.eval_screen import EvalScreen, eval_screen
from app.web.views import fragment, page


def _screen(state: State, error: str = "") -> EvalScreen:
    jobs: Jobs = state.jobs
    models = [e.id for e in state.models.all()]
    return eval_screen(models, list(available(state.settings.suites_dir)), jobs.current, error)


def _tournament(state: State, suite_name: str, models: Sequence[str], judge: str) -> tuple[str, Work]:
    """The job's title and work; Invalid naming what is wrong."""
    suites = available(state.settings.suites_dir)
    if suite_name not in suites:
        raise Invalid("Pick a suite.", param="suite")
    known = {e.id for e in state.models.all()}
    unknown = sorted({*models, judge} - known - {""})
    if unknown:
        raise Invalid(f"No model {shown(', '.join(unknown))}.", param="models")
    suite = load_suite(suites[suite_name], state.settings.suites_dir)
    ctx = EvalContext(state.models, state.store, state.metrics, templates=state.settings.judge_templates)
    title = f"Tournament of {', '.join(sorted(set(models)))} on {suite.name}, judged by {judge}"
    return title, tournament(ctx, suite, models, judge)


@get("/admin/eval")
async def eval_page(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    if not is_admin(request):
        return Redirect("/admin/login")
    return page("admin_eval.html", _screen(state))


@post("/admin/eval/tournament", guards=[admin_guard], status_code=200)
async def start_tournament(request: Request[Any, Any, Any], state: State) -> Template:
    form = await request.form()
    models = [str(m) for m in form.getall("models")] if "models" in form else []
    error = ""
    try:
        title, work = _tournament(state, str(form.get("suite") or ""), models, str(form.get("judge") or ""))
        state.jobs.start("tournament", title, work)
    except DomainError as exc:
        error = exc.message
    except SuiteError as exc:
        error = str(exc)
    return fragment("admin_eval.html", "job", _screen(state, error))


@get("/admin/eval/job", guards=[admin_guard])
async def job_block(state: State) -> Template:
    return fragment("admin_eval.html", "job", _screen(state))


@post("/admin/eval/job/cancel", guards=[admin_guard], status_code=200)
async def cancel_job(state: State) -> Template:
    jobs: Jobs = state.jobs
    await jobs.cancel()
    return fragment("admin_eval.html", "job", _screen(state))


route_handlers = [eval_page, start_tournament, job_block, cancel_job]
