"""Procedure schema (SQLAlchemy 1.4, 2.0 style)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


class Level(str, enum.Enum):
    """Administrative level that carries out a procedure (cấp thực hiện)."""

    MINISTRY = "bo"
    PROVINCE = "tinh"
    COMMUNE = "xa"
    OTHER = "khac"


class Method(str, enum.Enum):
    """Submission method (hình thức nộp)."""

    ONLINE = "truc_tuyen"
    IN_PERSON = "truc_tiep"
    POSTAL = "buu_chinh"


class OnlineLevel(str, enum.Enum):
    FULL = "toan_trinh"  # dịch vụ công trực tuyến toàn trình
    PARTIAL = "mot_phan"  # dịch vụ công trực tuyến một phần
    OFFLINE = "truc_tiep"  # no online submission
    UNKNOWN = "chua_ro"  # online submission exists, level not published


class TimeUnit(str, enum.Enum):
    WORKING_DAY = "working_day"
    DAY = "day"
    HOUR = "hour"
    MONTH = "month"


class Procedure(Base):
    __tablename__ = "procedures"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True, index=True)
    name = Column(Text, nullable=False)
    field = Column(Text)  # lĩnh vực
    levels = Column(JSON, nullable=False, default=list)  # list of Level values
    procedure_type = Column(Text)  # loại thủ tục
    implementing_agencies = Column(Text)  # cơ quan thực hiện
    competent_agency = Column(Text)  # cơ quan có thẩm quyền
    receiving_address = Column(Text)  # địa chỉ tiếp nhận hồ sơ
    target_subjects = Column(Text)  # đối tượng thực hiện
    requirements = Column(Text)  # yêu cầu, điều kiện
    steps = Column(Text)  # trình tự thực hiện
    result = Column(Text)  # kết quả
    decision_number = Column(Text)  # số quyết định
    ministry = Column(Text)
    online_level = Column(String(16), nullable=False, default=OnlineLevel.UNKNOWN.value)
    online_level_source = Column(Text, nullable=False, default="")
    online_submit_url = Column(Text)
    source_url = Column(Text)
    source_format = Column(String(32), nullable=False)
    source_file = Column(Text)
    source_hash = Column(String(64), nullable=False)
    imported_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    methods = relationship(
        "SubmissionMethod",
        order_by="SubmissionMethod.position",
        cascade="all, delete-orphan",
        back_populates="procedure",
    )
    documents = relationship(
        "Document",
        order_by="Document.position",
        cascade="all, delete-orphan",
        back_populates="procedure",
    )
    legal_bases = relationship(
        "LegalBasis",
        order_by="LegalBasis.position",
        cascade="all, delete-orphan",
        back_populates="procedure",
    )


class SubmissionMethod(Base):
    __tablename__ = "submission_methods"

    id = Column(Integer, primary_key=True)
    procedure_id = Column(
        Integer, ForeignKey("procedures.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position = Column(Integer, nullable=False)
    method = Column(String(16), nullable=False)  # Method value
    time_value = Column(Float)  # None when the source gives no number
    time_unit = Column(String(16))  # TimeUnit value
    time_text = Column(Text)  # original text
    fee_amounts = Column(JSON, nullable=False, default=list)  # VND, from cell and description
    fee_text = Column(Text)  # original fee cell
    fee_description = Column(Text)  # original description cell
    description = Column(Text)  # the portal's "Mô tả" column (how/where to submit, notes)

    procedure = relationship("Procedure", back_populates="methods")


class Document(Base):
    __tablename__ = "documents"

    id = Column(Integer, primary_key=True)
    procedure_id = Column(
        Integer, ForeignKey("procedures.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position = Column(Integer, nullable=False)
    name = Column(Text, nullable=False)
    originals = Column(Integer)
    copies = Column(Integer)
    form_name = Column(Text)
    case_name = Column(Text)  # trường hợp, when a procedure lists documents per case

    procedure = relationship("Procedure", back_populates="documents")


class LegalBasis(Base):
    __tablename__ = "legal_bases"

    id = Column(Integer, primary_key=True)
    procedure_id = Column(
        Integer, ForeignKey("procedures.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position = Column(Integer, nullable=False)
    title = Column(Text, nullable=False)
    number = Column(Text)

    procedure = relationship("Procedure", back_populates="legal_bases")


class ImportRun(Base):
    """One run of the importer, for operators and for `stats`."""

    __tablename__ = "import_runs"

    id = Column(Integer, primary_key=True)
    started_at = Column(DateTime, nullable=False)
    finished_at = Column(DateTime)
    report = Column(JSON, nullable=False, default=dict)
    rows_total = Column(BigInteger, nullable=False, default=0)


class StaffAccount(Base):
    """A hotline staff member who may sign in to /staff (`python -m webapp.accounts create`)."""

    __tablename__ = "staff_accounts"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True, index=True)
    password_hash = Column(Text, nullable=False)  # "scrypt$n$r$p$salt$hash", per-user salt
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class StaffSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "staff_sessions"

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True, index=True)
    account_id = Column(
        Integer, ForeignKey("staff_accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)

    account = relationship("StaffAccount")
