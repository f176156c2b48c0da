//! The OMOP concepts the synthetic cohort uses, written to `concept.parquet`.
//!
//! Ids are OMOP standard concept ids (SNOMED, RxNorm, LOINC, UCUM, Gender,
//! Race, Ethnicity, Visit, Type Concept) where we could establish them.
//! Concepts we could not pin to an Athena id with confidence are *local*
//! concepts in the range OMOP reserves for site-specific use (above
//! 2,000,000,000) under the vocabulary id `IHDSI`, so they can never collide
//! with a real standard concept. Replace them when the federation loads the
//! official vocabulary.

/// One row of `concept.parquet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concept {
    pub id: i32,
    pub name: &'static str,
    pub domain: &'static str,
    pub vocabulary: &'static str,
    pub class: &'static str,
    pub code: &'static str,
}

macro_rules! concepts {
    ($($konst:ident = $id:literal, $name:literal, $domain:literal, $vocab:literal, $class:literal, $code:literal;)*) => {
        $(#[doc = $name] pub const $konst: i32 = $id;)*
        /// Every concept used by the generator.
        pub const CONCEPTS: &[Concept] = &[
            $(Concept { id: $id, name: $name, domain: $domain, vocabulary: $vocab, class: $class, code: $code },)*
        ];
    };
}

concepts! {
    NO_MATCHING_CONCEPT = 0, "No matching concept", "Metadata", "None", "Undefined", "No matching concept";
    MALE = 8507, "MALE", "Gender", "Gender", "Gender", "M";
    FEMALE = 8532, "FEMALE", "Gender", "Gender", "Gender", "F";
    WHITE = 8527, "White", "Race", "Race", "Race", "5";
    BLACK = 8516, "Black or African American", "Race", "Race", "Race", "3";
    ASIAN = 8515, "Asian", "Race", "Race", "Race", "2";
    AMERICAN_INDIAN = 8657, "American Indian or Alaska Native", "Race", "Race", "Race", "1";
    PACIFIC_ISLANDER = 8557, "Native Hawaiian or Other Pacific Islander", "Race", "Race", "Race", "4";
    HISPANIC = 38003563, "Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity", "Hispanic";
    NOT_HISPANIC = 38003564, "Not Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity", "Not Hispanic";
    INPATIENT_VISIT = 9201, "Inpatient Visit", "Visit", "Visit", "Visit", "IP";
    OUTPATIENT_VISIT = 9202, "Outpatient Visit", "Visit", "Visit", "Visit", "OP";
    ER_VISIT = 9203, "Emergency Room Visit", "Visit", "Visit", "Visit", "ER";
    EHR = 32817, "EHR", "Type Concept", "Type Concept", "Type Concept", "OMOP4976890";
    PARKINSONS_DISEASE = 381270, "Parkinson's disease", "Condition", "SNOMED", "Clinical Finding", "49049000";
    BLADDER_CANCER = 197508, "Malignant tumor of urinary bladder", "Condition", "SNOMED", "Clinical Finding", "399326009";
    HYPERTENSION = 320128, "Essential hypertension", "Condition", "SNOMED", "Clinical Finding", "59621000";
    TYPE2_DIABETES = 201826, "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "44054006";
    HYPERLIPIDEMIA = 432867, "Hyperlipidemia", "Condition", "SNOMED", "Clinical Finding", "55822004";
    ASTHMA = 317009, "Asthma", "Condition", "SNOMED", "Clinical Finding", "195967001";
    DEPRESSION = 440383, "Depressive disorder", "Condition", "SNOMED", "Clinical Finding", "35489007";
    OSTEOARTHRITIS = 80180, "Osteoarthritis", "Condition", "SNOMED", "Clinical Finding", "396275006";
    ATRIAL_FIBRILLATION = 313217, "Atrial fibrillation", "Condition", "SNOMED", "Clinical Finding", "49436004";
    COPD = 255573, "Chronic obstructive lung disease", "Condition", "SNOMED", "Clinical Finding", "13645005";
    OBESITY = 433736, "Obesity", "Condition", "SNOMED", "Clinical Finding", "414916001";
    CISPLATIN = 1397599, "cisplatin", "Drug", "RxNorm", "Ingredient", "2555";
    GEMCITABINE = 1314924, "gemcitabine", "Drug", "RxNorm", "Ingredient", "12574";
    LEVODOPA = 789578, "levodopa", "Drug", "RxNorm", "Ingredient", "6375";
    CARBIDOPA = 740560, "carbidopa", "Drug", "RxNorm", "Ingredient", "2019";
    PRAMIPEXOLE = 720810, "pramipexole", "Drug", "RxNorm", "Ingredient", "746741";
    ROPINIROLE = 724908, "ropinirole", "Drug", "RxNorm", "Ingredient", "72302";
    METFORMIN = 1503297, "metformin", "Drug", "RxNorm", "Ingredient", "6809";
    LISINOPRIL = 1308216, "lisinopril", "Drug", "RxNorm", "Ingredient", "29046";
    AMLODIPINE = 1332418, "amlodipine", "Drug", "RxNorm", "Ingredient", "17767";
    ATORVASTATIN = 1545958, "atorvastatin", "Drug", "RxNorm", "Ingredient", "83367";
    ASPIRIN = 1112807, "aspirin", "Drug", "RxNorm", "Ingredient", "1191";
    OMEPRAZOLE = 923645, "omeprazole", "Drug", "RxNorm", "Ingredient", "7646";
    HEMOGLOBIN = 3000963, "Hemoglobin [Mass/volume] in Blood", "Measurement", "LOINC", "Lab Test", "718-7";
    CREATININE = 3016723, "Creatinine [Mass/volume] in Serum or Plasma", "Measurement", "LOINC", "Lab Test", "2160-0";
    GLUCOSE = 3004501, "Glucose [Mass/volume] in Serum or Plasma", "Measurement", "LOINC", "Lab Test", "2345-7";
    HBA1C = 3004410, "Hemoglobin A1c/Hemoglobin.total in Blood", "Measurement", "LOINC", "Lab Test", "4548-4";
    BMI = 3038553, "Body mass index (BMI) [Ratio]", "Measurement", "LOINC", "Clinical Observation", "39156-5";
    SYSTOLIC_BP = 3004249, "Systolic blood pressure", "Measurement", "LOINC", "Clinical Observation", "8480-6";
    GRAM_PER_DECILITER = 8713, "gram per deciliter", "Unit", "UCUM", "Unit", "g/dL";
    MILLIGRAM_PER_DECILITER = 8840, "milligram per deciliter", "Unit", "UCUM", "Unit", "mg/dL";
    PERCENT = 8554, "percent", "Unit", "UCUM", "Unit", "%";
    KG_PER_M2 = 9531, "kilogram per square meter", "Unit", "UCUM", "Unit", "kg/m2";
    MM_HG = 8876, "millimeter mercury column", "Unit", "UCUM", "Unit", "mm[Hg]";
    BCG = 2_000_000_001, "BCG live (intravesical)", "Drug", "IHDSI", "Ingredient", "IHDSI-BCG";
    TURBT = 2_000_000_101, "Transurethral resection of bladder tumor", "Procedure", "IHDSI", "Procedure", "IHDSI-TURBT";
    CYSTECTOMY = 2_000_000_102, "Radical cystectomy", "Procedure", "IHDSI", "Procedure", "IHDSI-CYST";
    UPDRS_III = 2_000_000_201, "MDS-UPDRS Part III motor examination total score", "Observation", "IHDSI", "Survey", "IHDSI-UPDRS3";
    TUMOR_TISSUE = 2_000_000_301, "Tumor tissue specimen", "Specimen", "IHDSI", "Specimen", "IHDSI-TUMOR";
    BLOOD_SPECIMEN = 2_000_000_302, "Blood specimen", "Specimen", "IHDSI", "Specimen", "IHDSI-BLOOD";
}

/// Look a concept up by id.
pub fn concept(id: i32) -> Option<&'static Concept> {
    CONCEPTS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concept_ids_are_unique_and_local_ids_are_reserved_range() {
        let mut ids: Vec<i32> = CONCEPTS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CONCEPTS.len());
        for c in CONCEPTS.iter().filter(|c| c.vocabulary == "IHDSI") {
            assert!(c.id > 2_000_000_000, "{}", c.name);
        }
    }
}
