"""Course pages: list, create, enrol students, schedule lessons."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from accounts.roles import Perm
from classroom import bp
from classroom.enrolment import enrol_emails, unenrol
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
    """Enrol the students whose addresses were pasted; all or nothing."""
    course = course_for(course_id, Action.MANAGE)
    form = EnrollForm()
    if not form.validate_on_submit():
        return render_detail(course, 400, enroll_form=form)
    result = enrol_emails(course, form.emails.data)
    if not result.ok:
        return render_detail(course, 400, enroll_form=form, enrol_result=result)
    added, already = len(result.added), len(result.already)
    flash(
        _(
            "Enrolled %(added)s student(s); %(already)s already enrolled.",
            added=added,
            already=already,
        ),
        "info",
    )
    return redirect(url_for("classroom.detail", course_id=course.id))


@bp.post("/<int:course_id>/students/<int:user_id>/remove")
@login_required
def remove_student(course_id: int, user_id: int) -> Page:
    """Take one student off the course."""
    course = course_for(course_id, Action.MANAGE)
    if not unenrol(course, user_id):
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
