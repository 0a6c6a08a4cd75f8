"""Course pages: list, create, enrol students, schedule lessons."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from accounts.forms import NewAccountForm
from accounts.limits import check_token_rate, check_user_rate
from accounts.models import Purpose
from accounts.roles import Perm
from accounts.routes import link_refused
from accounts.tokens import INVALID, lookup
from accounts.users import AccountError
from classroom import bp, enrolment
from classroom.enrolment import unenrol
from classroom.forms import CourseForm, EnrollForm, LessonForm
from classroom.models import Course, Enrollment, Lesson
from classroom.policy import Action, course_allows
from lectern.access import load_or_404, require
from lectern.extensions import db
from lectern.forms import ScheduleForm, show_start, start_utc
from lectern.timeutil import utcnow

Page = str | Response | tuple[str, int]


def course_for(course_id: int, action: Action) -> Course:
    """The course, if the current user may ``action`` it (404 if invisible, else 403)."""
    return require(load_or_404(Course, course_id), course_allows, action, Action.VIEW)


def visible_courses() -> list[Course]:
    """Courses the current user teaches or is enrolled in (all, for an admin)."""
    query = select(Course).order_by(Course.title)
    if current_user.role != "admin":
        enrolled = select(Enrollment.course_id).where(Enrollment.user_id == current_user.id)
        query = query.where(or_(Course.owner_id == current_user.id, Course.id.in_(enrolled)))
    return list(db.session.scalars(query))


@bp.get("/")
@login_required
def index() -> Page:
    """The courses the user teaches or takes."""
    return render_template(
        "classroom/index.html",
        courses=visible_courses(),
        can_create=current_user.can(Perm.CREATE_COURSE),
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required
def create() -> Page:
    """Create a course (instructors only)."""
    if not current_user.can(Perm.CREATE_COURSE):
        abort(403)
    form = CourseForm()
    if form.validate_on_submit():
        course = Course(
            title=form.title.data.strip(),
            description=(form.description.data or "").strip(),
            owner_id=current_user.id,
        )
        db.session.add(course)
        db.session.commit()
        flash(_("Course created."), "info")
        return redirect(url_for("classroom.detail", course_id=course.id))
    return render_template("classroom/course_form.html", form=form), 400 if form.errors else 200


def render_detail(course: Course, status: int = 200, **forms: object) -> Page:
    """The course page; forms passed in (with their errors) replace the empty ones."""
    context: dict[str, object] = {
        "enroll_form": EnrollForm(formdata=None),
        "lesson_form": LessonForm(formdata=None),
    }
    context.update(forms)
    manage = course_allows(current_user, course, Action.MANAGE)
    context.setdefault("invitations", enrolment.pending_invitations(course) if manage else [])
    page = render_template("classroom/detail.html", course=course, manage=manage, **context)
    return page, status


@bp.get("/<int:course_id>")
@login_required
def detail(course_id: int) -> Page:
    """A course: its lessons, and for its instructor the roster and forms."""
    return render_detail(course_for(course_id, Action.VIEW))


@bp.post("/<int:course_id>/enroll")
@login_required
def enroll(course_id: int) -> Page:
    """Enrol and invite the pasted addresses. The page's form asks for a preview first
    (``step=preview``); the preview's confirm button sends the valid addresses back with
    ``step=apply``. A list posted without a step is applied only when nothing in it needs
    asking (no invitation, no bad line), else previewed."""
    course = course_for(course_id, Action.MANAGE)
    check_user_rate(current_user.id)
    form = EnrollForm()
    if not form.validate_on_submit():
        return render_detail(course, 400, enroll_form=form)
    step = form.step.data
    planned = enrolment.plan(course, form.emails.data)
    if planned.too_many or (not planned.valid):
        return render_detail(course, 400, enroll_form=form, plan=planned)
    if step == "preview" or (step != "apply" and not planned.clean):
        status = 400 if planned.bad else 200
        return render_detail(course, status, enroll_form=form, plan=planned)
    done = enrolment.apply(course, "\n".join(planned.valid), current_user)
    flash(enrolled_message(done), "info")
    return redirect(url_for("classroom.detail", course_id=course.id))


def enrolled_message(done: enrolment.Plan) -> str:
    message = _(
        "Enrolled %(added)s student(s); %(already)s already enrolled.",
        added=len(done.enrol),
        already=len(done.already),
    )
    invited = len(done.invite) + len(done.reinvite)
    if invited:
        message += " " + _("Invited %(n)s (an e-mail with a link is on its way).", n=invited)
    return message


@bp.post("/<int:course_id>/invitations/<int:invitation_id>/cancel")
@login_required
def cancel_invitation(course_id: int, invitation_id: int) -> Page:
    """The invitation's link stops working."""
    course = course_for(course_id, Action.MANAGE)
    check_user_rate(current_user.id)
    row = enrolment.course_invitation(course, invitation_id)
    if row is None:
        abort(404)
    enrolment.cancel(row)
    flash(_("The invitation to %(email)s was cancelled.", email=row.email), "info")
    return redirect(url_for("classroom.detail", course_id=course.id))


@bp.post("/<int:course_id>/invitations/<int:invitation_id>/resend")
@login_required
def resend_invitation(course_id: int, invitation_id: int) -> Page:
    """A new link for the invitation, e-mailed again (the old one stops working)."""
    course = course_for(course_id, Action.MANAGE)
    check_user_rate(current_user.id)
    row = enrolment.course_invitation(course, invitation_id)
    if row is None:
        abort(404)
    if enrolment.resend(course, row, current_user):
        flash(_("The invitation to %(email)s was sent again.", email=row.email), "info")
    else:
        flash(_("The e-mail to %(email)s could not be sent.", email=row.email), "error")
    return redirect(url_for("classroom.detail", course_id=course.id))


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def accept_invitation(token: str) -> Page:
    """An invitation's link: choose a name and password; the account is created, enrolled and
    signed in, and lands on the course. Opening it (GET) changes nothing."""
    check_token_rate()
    row, problem = lookup(token, Purpose.INVITE)
    if problem or row is None or row.course_id is None:
        return link_refused(problem or INVALID)
    course = db.session.get(Course, row.course_id)
    form = NewAccountForm()
    if not form.validate_on_submit():
        page = render_template(
            "accounts/invitation.html", form=form, course=course, email=row.email
        )
        return page, 400 if form.errors else 200
    try:
        user = enrolment.accept(row, form.name.data, form.password.data)
    except AccountError as error:
        form.password.errors = [str(error)]
        page = render_template(
            "accounts/invitation.html", form=form, course=course, email=row.email
        )
        return page, 409
    target = url_for("classroom.detail", course_id=row.course_id)
    if user is None:  # an account had the address already: its owner signs in
        flash(_("You are enrolled. Sign in with your account to continue."), "info")
        return redirect(url_for("accounts.login", next=target))
    flash(_("Welcome, %(name)s: you are enrolled.", name=user.name), "info")
    return redirect(target)


@bp.post("/<int:course_id>/students/<int:user_id>/remove")
@login_required
def remove_student(course_id: int, user_id: int) -> Page:
    """Take one student off the course."""
    course = course_for(course_id, Action.MANAGE)
    if not unenrol(course, user_id, by=current_user.id):
        abort(404)
    flash(_("Student removed from the course."), "info")
    return redirect(url_for("classroom.detail", course_id=course.id))


@bp.post("/<int:course_id>/lessons")
@login_required
def add_lesson(course_id: int) -> Page:
    """Schedule a lesson."""
    course = course_for(course_id, Action.MANAGE)
    form = LessonForm()
    if not form.validate_on_submit():
        return render_detail(course, 400, lesson_form=form)
    lesson = Lesson(
        course_id=course.id,
        title=form.title.data.strip(),
        starts_at=start_utc(form.starts_at),
        duration_minutes=form.duration_minutes.data,
    )
    db.session.add(lesson)
    db.session.commit()
    flash(_("Lesson scheduled."), "info")
    return redirect(url_for("classroom.lesson", course_id=course.id, lesson_id=lesson.id))


def lesson_of(course: Course, lesson_id: int) -> Lesson:
    """The course's lesson ``lesson_id`` (404 for another course's)."""
    found = load_or_404(Lesson, lesson_id)
    if found.course_id != course.id:
        abort(404)
    return found


@bp.route("/<int:course_id>/lessons/<int:lesson_id>/schedule", methods=["GET", "POST"])
@login_required
def reschedule_lesson(course_id: int, lesson_id: int) -> Page:
    """Move a lesson: the form shows its time on the instructor's wall clock."""
    course = course_for(course_id, Action.MANAGE)
    found = lesson_of(course, lesson_id)
    form = ScheduleForm(obj=found)
    if form.validate_on_submit():
        found.starts_at = start_utc(form.starts_at)
        found.duration_minutes = form.duration_minutes.data
        db.session.commit()
        flash(_("Lesson rescheduled."), "info")
        return redirect(url_for("classroom.lesson", course_id=course.id, lesson_id=found.id))
    if not form.is_submitted():
        show_start(form.starts_at, found.starts_at)
    back = url_for("classroom.lesson", course_id=course.id, lesson_id=found.id)
    page = render_template("schedule_form.html", form=form, title=found.title, back=back)
    return page, 400 if form.errors else 200


@bp.get("/<int:course_id>/lessons/<int:lesson_id>")
@login_required
def lesson(course_id: int, lesson_id: int) -> Page:
    """A lesson's page: when it runs and, while live, the way into its room."""
    course = course_for(course_id, Action.VIEW)
    found = load_or_404(Lesson, lesson_id)
    if found.course_id != course.id:
        abort(404)
    return render_template(
        "classroom/lesson.html",
        course=course,
        lesson=found,
        teach=course_allows(current_user, course, Action.TEACH),
        now=utcnow(),
    )
